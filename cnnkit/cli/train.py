"""``cnnkit train``: train a recipe into a run folder, resume a run, or sweep values."""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import InputError


def train_command(
    recipe: Annotated[
        str | None,
        typer.Argument(
            metavar="RECIPE|NAME", help="Recipe file or built-in name (not needed with --resume)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
        ),
    ] = None,
    out_: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", metavar="PATH", help="Run folder (default runs/NAME-TIMESTAMP)."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Let --out replace the run in that folder (put back if the new run fails "
            "before its first last.pt).",
        ),
    ] = False,
    runs_root: Annotated[
        Path, typer.Option("--runs", metavar="DIR", help="Where new run folders go.")
    ] = Path("runs"),
    resume_: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="PATH",
            help="Continue the run in this folder from its last.pt.",
        ),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            metavar="KEY=V1,V2[,...]",
            help="Train every combination of the values (YAML, repeatable), then compare.",
        ),
    ] = None,
    grad_stats: Annotated[
        bool,
        typer.Option("--grad-stats", help="Log per-layer gradient norms to grad_stats.csv."),
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Sweep: print the table as CSV.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Train a recipe on its data: a progress bar, a run folder, a final table.

    The run folder holds recipe.yaml (fully resolved), metrics.csv, summary.json, last.pt and
    best.pt. Under torchrun (torchrun --nproc-per-node N -m cnnkit train RECIPE) it trains
    with DDP and rank 0 alone writes.
    """
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    overrides = list(set_ or [])
    out, resume = _folder("--out", out_), _folder("--resume", resume_)
    if resume is not None:
        if recipe is not None or overrides or sweep:
            raise InputError(
                "--resume continues a run exactly as it was: give no recipe, --set or --sweep"
            )
        _resume(resume, grad_stats, as_json)
        return
    if recipe is None:
        raise InputError("give a RECIPE to train (or --resume RUN_DIR)")
    if sweep:
        _sweep(recipe, overrides, sweep, runs_root, grad_stats, as_csv, as_json)
        return
    if out is not None and not overwrite:
        _refuse_to_replace(out)
    parsed = load_with_overrides(recipe, overrides)
    note = f"resolved by cnnkit train from {recipe}" + "".join(f" --set {o}" for o in overrides)
    plan = plan_from_recipe(parsed, note)
    place: dict[str, Any] = {"out": out, "runs_root": runs_root, "overwrite": overwrite}
    _run(plan, grad_stats=grad_stats, as_json=as_json, **place)


def _folder(option: str, value: str | None) -> Path | None:
    """A run folder from the command line; ``''`` is refused (as a Path it is ``.``, and the
    run would be written into the current folder)."""
    if value is not None and not value.strip():
        raise InputError(f"{option} '': give a folder name, e.g. {option} runs/mine")
    return None if value is None else Path(value)


def _refuse_to_replace(out: Path) -> None:
    """A run's checkpoints and metrics are the user's work: --out never replaces them unasked.
    Checked early to fail before loading data; ``train_run`` checks again under the lock."""
    from cnnkit.train import runs

    if out.is_dir():
        runs.check_free(out)


def _resume(run_dir: Path, grad_stats: bool, as_json: bool) -> None:
    """Continue from ``last.pt``; without one (killed before its first checkpoint) start the
    run again from its ``recipe.yaml``. The folder is locked before it is read, so a half-done
    ``--overwrite`` is settled first (``runs.recover``) and no other run can change it."""
    import contextlib

    from cnnkit.errors import CheckpointError
    from cnnkit.train import runs

    if not run_dir.is_dir():  # before locking: the lock file goes in it
        raise CheckpointError("not a run folder: no such folder", where=str(run_dir))
    main = _is_main_rank()
    with runs.locked(run_dir) if main else contextlib.nullcontext():
        if main:
            runs.recover(run_dir)
        runs.check_restartable(run_dir)
        plan = _plan_of_run(run_dir)
        _run(plan, resume_dir=run_dir, grad_stats=grad_stats, as_json=as_json)


def _plan_of_run(run_dir: Path) -> Any:
    """The plan a run folder was started with: from ``last.pt``, else its ``recipe.yaml``."""
    from cnnkit.errors import CheckpointError
    from cnnkit.train import runs
    from cnnkit.train.checkpoint import load_checkpoint
    from cnnkit.train.plan import plan_from_recipe, recipe_of_run

    if (run_dir / runs.LAST).is_file():
        checkpoint = load_checkpoint(run_dir / runs.LAST)
        text, name = checkpoint["recipe"], checkpoint["name"]
    else:
        from cnnkit.recipe.limits import MAX_FILE_BYTES

        path = run_dir / runs.RECIPE
        try:
            if path.stat().st_size > MAX_FILE_BYTES:  # read_yaml bounds it too, after reading
                raise OSError(f"larger than {MAX_FILE_BYTES:,} bytes, the limit for a recipe")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"cannot read the run's recipe: {err}", where=str(path)) from None
        name = runs.name_of(text, run_dir)
    recipe = recipe_of_run(text, str(run_dir / runs.RECIPE))
    plan = plan_from_recipe(recipe, "", name=name)
    return dataclasses.replace(plan, recipe_text=text)  # byte-identical to the run's own


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _run(
    plan: Any, *, as_json: bool, grad_stats: bool, quiet: bool = False, **where: Any
) -> dict[str, Any]:
    """Train with progress on stderr, then the JSON summary or the final table on stdout;
    ``quiet`` (sweeps printing one table) shows neither."""
    from cnnkit.cli.output import emit_json
    from cnnkit.train.experiment import train_run

    show = _is_main_rank() and not as_json and not quiet
    reporter = _reporter() if show else None
    try:
        summary = train_run(
            plan,
            reporter=reporter,
            grad_stats=grad_stats,
            on_start=_announce if show else None,
            **where,
        )
    finally:
        if reporter is not None:
            reporter.close()
    if not _is_main_rank() or quiet:
        return summary
    if as_json:
        emit_json(summary)
    else:
        _final_table(summary, reporter.rows if reporter else [])
    return summary


def _announce(run: Path, data: Any, params: int) -> None:
    from cnnkit.cli.output import console

    sizes = f"{len(data.train)} train / {len(data.val or [])} val / {len(data.test or [])} test"
    console(stderr=True).print(
        f"training {params:,} parameters on {data.source} ({sizes}) -> {run}",
        markup=False,
        soft_wrap=True,  # a log file gets the whole line, never a path broken at 80 columns
    )


def _reporter() -> Any:
    """A live bar on a terminal; in a log file or a pipe, one line per epoch as it ends (a bar
    there shows nothing until the run is over)."""
    from cnnkit.cli.output import console

    return _ProgressReporter() if console(stderr=True).is_terminal else _LineReporter()


class _LineReporter:
    """One plain line per epoch on stderr, flushed at once: what ``tail -f`` of a log shows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.epochs = 0

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs

    def step(self, step: int, stats: dict[str, float] | None) -> None: ...

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        parts = [f"epoch {row['epoch']}/{self.epochs}"]
        parts += [form.format(row[key]) for key, form in _EPOCH_LINE if row.get(key) is not None]
        sys.stderr.write("  ".join(parts) + "\n")
        sys.stderr.flush()

    def close(self) -> None: ...


_EPOCH_LINE = (  # metrics.csv column, how the line shows it
    ("train_loss", "loss {:.4f}"),
    ("train_accuracy", "acc {:.2%}"),
    ("val_loss", "val loss {:.4f}"),
    ("val_accuracy", "val acc {:.2%}"),
    ("images_per_s", "{:,.0f} img/s"),
    ("time_s", "{:.2f} s"),
)


class _ProgressReporter:
    """Renders ``fit``'s reports as a rich progress bar on stderr (stdout stays for results)."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from cnnkit.cli.output import console

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=False,
        )
        self.started = False
        self.task: Any = None
        self.rows: list[dict[str, Any]] = []
        self.last = ""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        if not self.started:  # lazily: an error before training leaves stderr one line
            self.progress.start()
            self.started = True
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, stats="")

    def step(self, step: int, stats: dict[str, float] | None) -> None:
        if stats is not None:
            self.last = f"loss {stats['loss']:.4f}"
            if "accuracy" in stats:
                self.last += f"  acc {stats['accuracy']:.2%}"
            self.progress.update(self.task, completed=step, stats=self.last)
        elif step % 5 == 0:
            self.progress.update(self.task, completed=step)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        val = f"  val acc {row['val_accuracy']:.2%}" if "val_accuracy" in row else ""
        self.progress.update(self.task, stats=f"{self.last}{val}  {row['images_per_s']:,.0f} img/s")

    def close(self) -> None:
        if self.started:
            self.progress.stop()


_COLUMNS = {  # metrics.csv column -> (table header, format)
    "epoch": ("epoch", "{:d}"),
    "lr": ("lr", "{:.3g}"),
    "train_loss": ("train loss", "{:.4f}"),
    "train_accuracy": ("train acc", "{:.2%}"),
    "val_loss": ("val loss", "{:.4f}"),
    "val_accuracy": ("val acc", "{:.2%}"),
    "images_per_s": ("img/s", "{:,.0f}"),
    "time_s": ("time s", "{:.2f}"),
}


def _final_table(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    if rows:
        keys = [k for k in _COLUMNS if k in rows[0]]
        table = Table(title=f"{summary['name']}: {summary['status']}", title_justify="left")
        for k in keys:
            table.add_column(_COLUMNS[k][0], justify="right")
        for row in rows:
            table.add_row(*(_COLUMNS[k][1].format(row[k]) for k in keys))
        print_table(out, table)
    test = summary.get("test")
    best = summary["best"]
    lines = [f"best {best['metric']}: {best['value']:.4g} at epoch {best['epoch']}"]
    if test and test["task"] == "classify":
        lines.append(
            f"test accuracy {test['accuracy']:.2%} (top-{test['top_k']} "
            f"{test['top_k_accuracy']:.2%}, loss {test['loss']:.4f}) on {test['samples']} "
            f"images with {summary['test_weights']}"
        )
    elif test:
        from cnnkit.cli.evaluate import regression_line

        lines.append(f"test {regression_line(test)}")
    if not rows:  # a resumed run that had already finished: nothing was trained now
        lines.insert(0, f"already {summary['status']} after {summary['epochs']} epochs")
    grads = summary.get("grad_stats")
    if grads:
        ratio = f"{grads['ratio']:.3g}" if grads["ratio"] is not None else "n/a"
        first, last = grads["first"], grads["last"]
        lines.append(f"mean weight-gradient norm in epoch {grads['epoch']} (grad_stats.csv):")
        lines.append(
            f"  first layer {first['parameter']} {first['grad_norm']:.3g}, "
            f"last layer {last['parameter']} {last['grad_norm']:.3g}, first/last {ratio}"
        )
    lines.append(f"run folder: {summary['run_dir']}  ({summary['time_s']:.1f} s)")
    for line in lines:
        out.print(line, markup=False)


_OPEN, _CLOSE = "[{", "]}"


def split_values(text: str) -> list[str]:
    """``0.1,0.01`` -> two values; commas inside ``[...]``, ``{...}`` or quotes do not split,
    so ``[0.9,0.99],[0.8,0.9]`` is two YAML lists. Raises ValueError when brackets or quotes
    do not match."""
    values, depth, quote, current = [], [], "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and current.rstrip()[-1:] in ("", *_OPEN, ",", ":"):
            quote = char  # a YAML quoted scalar starts a value; "it's" is plain text
        elif char in _OPEN:
            depth.append(_CLOSE[_OPEN.index(char)])
        elif char in _CLOSE:
            if not depth or depth.pop() != char:
                raise ValueError(f"unmatched {char!r}")
        elif char == "," and not depth:
            values.append(current)
            current = ""
            continue
        current += char
    if quote or depth:
        raise ValueError(f"unclosed {quote or _OPEN[_CLOSE.index(depth[-1])]!r}")
    return [v.strip() for v in [*values, current] if v.strip()]


def _parse_sweep(items: list[str]) -> list[tuple[str, list[str]]]:
    axes = []
    example = "e.g. train.lr=0.1,0.01 or train.betas=[0.9,0.99],[0.8,0.9]"
    for item in items:
        key, sep, values = item.partition("=")
        try:
            choices = split_values(values)
        except ValueError as err:
            raise InputError(f"--sweep {item}: {err}; {example}") from None
        if not sep or not key.strip() or not choices:
            raise InputError(f"--sweep {item}: expected KEY.PATH=V1,V2,... {example}")
        axes.append((key.strip(), choices))
    return axes


def _sweep(
    recipe: str,
    overrides: list[str],
    items: list[str],
    runs_root: Path,
    grad_stats: bool,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Every combination of the swept values as its own run, then one comparison table; a
    combination that diverges is a row with status ``diverged`` and the sweep goes on."""
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    axes = _parse_sweep(items)
    combos = [
        dict(zip([k for k, _ in axes], values))
        for values in itertools.product(*(v for _, v in axes))
    ]
    plans = []  # validate every combination before training any
    for combo in combos:
        sets = overrides + [f"{k}={v}" for k, v in combo.items()]
        note = f"resolved by cnnkit train --sweep from {recipe}" + "".join(
            f" --set {s}" for s in sets
        )
        plans.append((combo, plan_from_recipe(load_with_overrides(recipe, sets), note)))
    quiet = as_json or as_csv
    rows = [_sweep_one(combo, plan, runs_root, grad_stats, quiet) for combo, plan in plans]
    if _is_main_rank():
        _sweep_table(rows, as_csv, as_json)


def _sweep_one(
    combo: dict[str, str], plan: Any, runs_root: Path, grad_stats: bool, quiet: bool
) -> dict[str, Any]:
    """Train one combination; divergence becomes its row (with the error), not the end."""
    from cnnkit.train.loop import Diverged

    try:
        summary = _run(plan, runs_root=runs_root, grad_stats=grad_stats, as_json=False, quiet=quiet)
    except Diverged as err:
        if _is_main_rank():
            from cnnkit.cli.output import console

            where = " ".join(f"{k}={v}" for k, v in combo.items())
            console(stderr=True).print(f"{where}: diverged: {err}", markup=False)
        summary = err.summary or {"status": "diverged", "error": str(err)}
    return _sweep_row(combo, summary)


def _sweep_table(rows: list[dict[str, Any]], as_csv: bool, as_json: bool) -> None:
    import pandas as pd

    from cnnkit.cli.output import emit_json

    table = pd.DataFrame(rows)
    if as_json:
        emit_json({"runs": rows})
    elif as_csv:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        from cnnkit.cli.output import console

        console().print(table.to_string(index=False), markup=False)


def _sweep_row(combo: dict[str, str], summary: dict[str, Any]) -> dict[str, Any]:
    final, test = summary.get("final", {}), summary.get("test") or {}
    grads = summary.get("grad_stats") or {}
    best = summary.get("best") or {}
    row: dict[str, Any] = dict(combo)
    row.update(
        {
            "status": summary["status"],
            "epochs": summary.get("epochs"),
            f"best_{best.get('metric') or 'value'}": best.get("value"),
            "best_epoch": best.get("epoch"),
            "final_train_loss": final.get("train_loss"),
            "final_val_loss": final.get("val_loss"),
            "final_val_accuracy": final.get("val_accuracy"),
            "test_accuracy": test.get("accuracy"),
            "test_mse": test.get("mse"),
            "grad_first": _sig(grads.get("first", {}).get("grad_norm")),
            "grad_last": _sig(grads.get("last", {}).get("grad_norm")),
            "grad_ratio": _sig(grads.get("ratio")),
            "time_s": round(summary["time_s"], 2) if "time_s" in summary else None,
            "params": summary.get("params"),
            "run_dir": summary.get("run_dir"),
            "error": summary.get("error"),
        }
    )
    return {k: v for k, v in row.items() if v is not None}


def _sig(value: float | None) -> float | None:
    """Three significant digits: gradient norms span orders of magnitude, so round relatively."""
    return None if value is None else float(f"{value:.3g}")
