"""``cnnkit train``'s documents: one run's ``summary.json``, and a sweep's rows.

Training prints nothing here: progress goes to the ``reporter`` and ``on_start`` hooks the
caller passes (the CLI's bar or per-epoch lines), results come back as plain data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.errors import InputError

if TYPE_CHECKING:
    from cnnkit.train.loop import Reporter

RESUME_ALONE = (
    "--resume continues a run exactly as it was: give no recipe or --sweep "
    "(--set train.epochs=N extends it)"
)


def train_summary(
    recipe: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    runs_root: str | Path = Path("runs"),
    overwrite: bool = False,
    resume: str | Path | None = None,
    grad_stats: bool = False,
    reporter: Reporter | None = None,
    on_start: Callable[..., None] | None = None,
    on_note: Callable[[str], None] | None = None,
    tensorboard: bool = False,
) -> dict[str, Any]:
    """Train a recipe (file or built-in name, with ``--set`` overrides) into a new run folder,
    or continue the run in ``resume``; returns its ``summary.json`` (what ``--json`` prints)."""
    from cnnkit.train.experiment import train_run
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    hooks = {"reporter": reporter, "grad_stats": grad_stats, "on_start": on_start}
    hooks.update(on_note=on_note, tensorboard=tensorboard)
    if tensorboard:
        from cnnkit.train.tboard import check_available

        check_available()
    if resume is not None:
        if recipe is not None:
            raise InputError(RESUME_ALONE)
        return _resume(Path(resume), hooks, overrides)
    if recipe is None:
        raise InputError("give a RECIPE to train (or --resume RUN_DIR)")
    out = None if out is None else Path(out)
    if out is not None and not overwrite:
        _refuse_to_replace(out)
    parsed = load_with_overrides(recipe, list(overrides))
    note = f"resolved by cnnkit train from {recipe}" + "".join(f" --set {o}" for o in overrides)
    plan = plan_from_recipe(parsed, note)
    return train_run(plan, out=out, runs_root=Path(runs_root), overwrite=overwrite, **hooks)


def _refuse_to_replace(out: Path) -> None:
    """A run's checkpoints and metrics are the user's work: --out never replaces them unasked.
    Checked early to fail before loading data; ``train_run`` checks again under the lock."""
    from cnnkit.train import runs

    if out.is_dir():
        runs.check_free(out)


def _resume(run_dir: Path, hooks: dict[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Continue from ``last.pt``; without one (killed before its first checkpoint) start the
    run again from its ``recipe.yaml``. The folder is locked before it is read, so a half-done
    ``--overwrite`` is settled first (``runs.recover``) and no other run can change it.
    ``overrides`` may extend the run (``cnnkit.train.extend``)."""
    import contextlib

    from cnnkit.targets import RUN, resolve
    from cnnkit.train import runs
    from cnnkit.train.experiment import train_run
    from cnnkit.train.plan import plan_of_run

    resolve(str(run_dir), accept={RUN}, with_recipe=False)  # a folder: the lock file goes in it
    main = is_main_rank()
    with runs.locked(run_dir) if main else contextlib.nullcontext():
        if main:
            runs.recover(run_dir)
        runs.check_restartable(run_dir)
        if overrides:
            import dataclasses

            from cnnkit.train.extend import extended_plan

            plan, before = extended_plan(run_dir, overrides)
            plan = dataclasses.replace(plan, extended_from=before)
        else:
            plan = _unfinished_extension(run_dir, plan_of_run(run_dir))
        return train_run(plan, resume_dir=run_dir, **hooks)


def _unfinished_extension(run_dir: Path, plan: Any) -> Any:
    """The plan of an extension killed before its next ``last.pt``, else ``plan``."""
    import dataclasses

    from cnnkit.train.extend import unfinished

    found = unfinished(run_dir, plan)
    return plan if found is None else dataclasses.replace(found[0], extended_from=found[1])


def is_main_rank() -> bool:
    """Rank 0 of a torchrun job (or a plain process): the one that writes and prints."""
    return os.environ.get("RANK", "0") == "0"


def sweep_summary(
    recipe: str | Path,
    sweep: Sequence[str],
    *,
    overrides: Sequence[str] = (),
    runs_root: str | Path = Path("runs"),
    grad_stats: bool = False,
    train: Callable[..., dict[str, Any]] | None = None,
    on_diverged: Callable[[dict[str, str], Exception], None] | None = None,
) -> dict[str, Any]:
    """Train every combination of the ``--sweep`` values as its own run (all validated
    first); returns ``{"runs": rows}``, what ``--sweep ... --json`` prints. A combination that
    diverges is a row with status ``diverged`` (``on_diverged`` hears of it) and the sweep goes
    on. ``train`` trains one plan, called like ``train_run`` (the default, which is silent)."""
    from cnnkit.train.experiment import train_run
    from cnnkit.train.loop import Diverged
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe
    from cnnkit.train.sweep import combinations, sweep_row

    plans = []  # validate every combination before training any
    for combo in combinations(sweep):
        sets = [*overrides, *(f"{k}={v}" for k, v in combo.items())]
        note = f"resolved by cnnkit train --sweep from {recipe}" + "".join(
            f" --set {s}" for s in sets
        )
        plans.append((combo, plan_from_recipe(load_with_overrides(recipe, sets), note)))
    rows = []
    for combo, plan in plans:
        try:
            summary = (train or train_run)(plan, runs_root=Path(runs_root), grad_stats=grad_stats)
        except Diverged as err:
            if on_diverged is not None:
                on_diverged(combo, err)
            summary = err.summary or {"status": "diverged", "error": str(err)}
        rows.append(sweep_row(combo, summary))
    return {"runs": rows}
