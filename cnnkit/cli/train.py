"""``cnnkit train``: train a recipe into a run folder, resume a run, or sweep values."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.init_options import (
    FreezeOpt,
    InitFromOpt,
    PartialOpt,
    check_not_resume,
    init_overrides,
)
from cnnkit.cli.options import DebugOption, JsonOption, SetOption
from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

RecipeArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RECIPE|NAME", help="Recipe file or built-in name (not needed with --resume)."
    ),
]
OutOpt = Annotated[
    str | None,
    typer.Option("--out", "-o", metavar="PATH", help="Run folder (default runs/NAME-TIMESTAMP)."),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Let --out replace the run in that folder (put back if the new run fails "
        "before its first last.pt).",
    ),
]
RunsOpt = Annotated[Path, typer.Option("--runs", metavar="DIR", help="Where new run folders go.")]
ResumeOpt = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="PATH",
        help="Continue the run in this folder from its last.pt.",
    ),
]
SweepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        metavar="KEY=V1,V2[,...]",
        help="Train every combination of the values (YAML, repeatable), then compare.",
    ),
]
GradStatsOpt = Annotated[
    bool,
    typer.Option("--grad-stats", help="Log per-layer gradient norms to grad_stats.csv."),
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Sweep: print the table as CSV.")]
TensorBoardOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also log each epoch's metrics to RUN/tensorboard/ (needs the tensorboard package).",
    ),
]
PrintConfigOpt = Annotated[
    bool,
    typer.Option(
        "--print-config",
        help="Print the resolved recipe (every data/train default, after --set) as YAML "
        "(--json: JSON) and exit without training.",
    ),
]


def train_command(
    recipe: RecipeArg = None,
    set_: SetOption = None,
    out_: OutOpt = None,
    overwrite: OverwriteOpt = False,
    runs_root: RunsOpt = Path("runs"),
    resume_: ResumeOpt = None,
    sweep: SweepOpt = None,
    grad_stats: GradStatsOpt = False,
    as_csv: CsvOpt = False,
    print_config: PrintConfigOpt = False,
    tensorboard: TensorBoardOpt = False,
    init_from: InitFromOpt = None,
    freeze: FreezeOpt = None,
    allow_partial: PartialOpt = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Train a recipe on its data: a progress bar, a run folder, a final table.

    The run folder holds recipe.yaml (fully resolved), metrics.csv, summary.json, last.pt and
    best.pt. Under torchrun (torchrun --nproc-per-node N -m cnnkit train RECIPE) it trains
    with DDP and rank 0 alone writes.
    """
    first = init_overrides(init_from, freeze, allow_partial)
    check_not_resume(resume_, first)
    set_ = [*(set_ or []), *first]
    if print_config:
        _print_config(recipe, list(set_ or []), resume_ is not None or bool(sweep), as_json)
        return
    options = {"grad_stats": grad_stats, "tensorboard": tensorboard}
    _train(recipe, set_, out_, overwrite, runs_root, resume_, sweep, options, as_csv, as_json)


def _train(
    recipe: str | None,
    set_: list[str] | None,
    out_: str | None,
    overwrite: bool,
    runs_root: Path,
    resume_: str | None,
    sweep: list[str] | None,
    options: dict[str, bool],
    as_csv: bool,
    as_json: bool,
) -> None:
    """One run (new or resumed) with its table or JSON, or a sweep with its comparison."""
    from cnnkit.reports.train import RESUME_ALONE, train_summary

    overrides = list(set_ or [])
    out, resume = _folder("--out", out_), _folder("--resume", resume_)
    if resume is not None and (recipe is not None or sweep):
        raise InputError(RESUME_ALONE)
    if sweep and recipe is not None:
        if options["tensorboard"]:
            raise InputError("--tensorboard logs one run: train without --sweep")
        _sweep(recipe, overrides, sweep, runs_root, options["grad_stats"], as_csv, as_json)
        return
    place = {"out": out, "runs_root": runs_root, "overwrite": overwrite, "resume": resume}
    _run(train_summary, recipe, overrides=overrides, as_json=as_json, **options, **place)


def _print_config(recipe: str | None, overrides: list[str], other: bool, as_json: bool) -> None:
    """``--print-config``: the resolved recipe on stdout; nothing is trained or written."""
    from cnnkit.train.resolved import resolved_config, resolved_document

    if recipe is None or other:
        raise InputError("--print-config takes a RECIPE (and --set), not --resume or --sweep")
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(resolved_document(recipe, overrides))
    else:
        typer.echo(resolved_config(recipe, overrides), nl=False)


def _folder(option: str, value: str | None) -> Path | None:
    """A run folder from the command line; ``''`` is refused (as a Path it is ``.``, and the
    run would be written into the current folder)."""
    if value is not None and not value.strip():
        raise InputError(f"{option} '': give a folder name, e.g. {option} runs/mine")
    return None if value is None else Path(value)


def _run(
    train: Callable[..., dict[str, Any]], *args: Any, as_json: bool, quiet: bool = False, **kw: Any
) -> dict[str, Any]:
    """``train(*args, **kw)`` with progress on stderr, then the JSON summary or the final table
    on stdout; ``quiet`` (sweeps printing one table) shows neither."""
    from cnnkit.cli.output import emit_json
    from cnnkit.reports.train import is_main_rank

    show = is_main_rank() and not as_json and not quiet
    reporter = _reporter() if show else None

    def start(run: Path, data: Any, params: int) -> None:
        _announce(run, data, params)
        if reporter is not None:  # images for image data; token ids and signals: samples
            reporter.unit = "images" if len(data.input_shape) == 3 else "samples"

    try:
        note = _note if is_main_rank() and not quiet else None
        summary = train(
            *args, reporter=reporter, on_start=start if show else None, on_note=note, **kw
        )
    finally:
        if reporter is not None:
            reporter.close()
    if not is_main_rank() or quiet:
        return summary
    if as_json:
        emit_json(summary)
    else:
        _final_table(
            summary, reporter.rows if reporter else [], getattr(reporter, "unit", "images")
        )
    return summary


def _note(line: str) -> None:
    """A notice on stderr (also with --json: stdout keeps the one document)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _announce(run: Path, data: Any, params: int) -> None:
    from cnnkit.cli.output import console

    sizes = f"{len(data.train)} train / {len(data.val or [])} val / {len(data.test or [])} test"
    if data.cache == "stream":  # in memory, the line stays as it always was
        sizes += f"; cache: stream, {data.train.workers} workers"
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
        self.unit = "images"  # or "samples": what the run trains on (set at its start)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs

    def step(self, step: int, stats: dict[str, float] | None) -> None: ...

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        parts = [f"epoch {row['epoch']}/{self.epochs}"]
        rate = _rate(self.unit)
        parts += [
            form.format(row[key], rate=rate)
            for key, form in _EPOCH_LINE
            if row.get(key) is not None
        ]
        sys.stderr.write("  ".join(parts) + "\n")
        sys.stderr.flush()

    def close(self) -> None: ...


_EPOCH_LINE = (  # metrics.csv column, how the line shows it
    ("train_loss", "loss {:.4f}"),
    ("train_accuracy", "acc {:.2%}"),
    ("val_loss", "val loss {:.4f}"),
    ("val_accuracy", "val acc {:.2%}"),
    ("val_accuracy_ema", "EMA val acc {:.2%}"),  # train.ema
    ("images_per_s", "{:,.0f} {rate}"),
    ("time_s", "{:.2f} s"),
)


def _rate(unit: str) -> str:
    """The throughput's unit: img/s for images, samples/s for token ids and signals (the
    metrics.csv and --json field stays ``images_per_s``)."""
    return "img/s" if unit == "images" else f"{unit}/s"


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
        self.unit = "images"  # or "samples" (set at the run's start)

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
        rate = f"{row['images_per_s']:,.0f} {_rate(self.unit)}"
        self.progress.update(self.task, stats=f"{self.last}{val}  {rate}")

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
    "val_accuracy_ema": ("EMA val acc", "{:.2%}"),  # train.ema
    "images_per_s": ("img/s", "{:,.0f}"),
    "time_s": ("time s", "{:.2f}"),
}


def _final_table(summary: dict[str, Any], rows: list[dict[str, Any]], unit: str = "images") -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    if rows:
        keys = [k for k in _COLUMNS if k in rows[0]]
        table = Table(title=f"{summary['name']}: {summary['status']}", title_justify="left")
        for k in keys:
            table.add_column(
                _rate(unit) if k == "images_per_s" else _COLUMNS[k][0], justify="right"
            )
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
            f"{unit} with {summary['test_weights']}"
        )
    elif test and test["task"] == "segment":
        from cnnkit.cli.segment_view import segment_line

        lines.append(f"test {segment_line(test)} on {test['samples']} {unit}")
    elif test:
        from cnnkit.cli.evaluate import regression_line

        lines.append(f"test {regression_line(test)}")
    lines += _ema_lines(summary)
    extended = summary.get("extended")
    if extended and rows:
        lines.insert(0, f"extended from {extended['from']} to {extended['to']} epochs")
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


def _ema_lines(summary: dict[str, Any]) -> list[str]:
    """The test split scored with the EMA weights too (``train.ema``, classification)."""
    test = summary.get("test_ema")
    if not test or test["task"] != "classify":
        return []
    return [
        f"EMA test accuracy {test['accuracy']:.2%} (loss {test['loss']:.4f}) with the EMA "
        f"weights of {summary['test_weights']}"
    ]


def _sweep(
    recipe: str,
    overrides: list[str],
    items: list[str],
    runs_root: Path,
    grad_stats: bool,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Every combination as its own run (each with its progress and table unless the sweep
    prints JSON or CSV), then one comparison table on the main rank."""
    import functools

    from cnnkit.reports.train import is_main_rank, sweep_summary
    from cnnkit.train.experiment import train_run

    quiet = as_json or as_csv
    document = sweep_summary(
        recipe,
        items,
        overrides=overrides,
        runs_root=runs_root,
        grad_stats=grad_stats,
        train=functools.partial(_run, train_run, as_json=False, quiet=quiet),
        on_diverged=_diverged,
    )
    if is_main_rank():
        _sweep_table(document, as_csv, as_json)


def _diverged(combo: dict[str, str], err: Exception) -> None:
    from cnnkit.reports.train import is_main_rank

    if is_main_rank():
        from cnnkit.cli.output import console

        where = " ".join(f"{k}={v}" for k, v in combo.items())
        console(stderr=True).print(f"{where}: diverged: {err}", markup=False)


def _sweep_table(document: dict[str, Any], as_csv: bool, as_json: bool) -> None:
    import pandas as pd

    from cnnkit.cli.output import emit_json

    table = pd.DataFrame(document["runs"])
    if as_json:
        emit_json(document)
    elif as_csv:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        from cnnkit.cli.output import console

        console().print(table.to_string(index=False), markup=False)
