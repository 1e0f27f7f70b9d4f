"""``cnnkit train --resume RUN --set train.epochs=N``: a run extended, still exactly.

An extended run must end where an uninterrupted run of N epochs would: the epochs already
trained have to be the ones that run would have trained. So ``train.epochs`` is the one key a
resume may change, and only when the learning-rate curve does not depend on it: ``constant``
and ``step`` schedules (and warm-up) are functions of the step alone, while ``cosine`` and
``onecycle`` spread over all the epochs, so a new total changes the rate of every step already
taken and is refused. A run that stopped early is refused too (the uninterrupted run of N
epochs would have stopped at the same epoch), as is fewer epochs than were trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError

EXTENDABLE = ("train.epochs",)
BY_TOTAL = ("cosine", "onecycle")  # schedules whose curve spreads over train.epochs
REASONS = {  # why another key breaks exactness, by key (then by section)
    "train.batch_size": "the data order and the steps of every epoch follow it",
    "train.seed": "every epoch's data order, augmentation and dropout derive from it",
    "train.device": "the epochs so far ran on the device it picked",
    "train.amp": "the numbers of every step so far were computed at that precision",
    **dict.fromkeys(
        (
            "train.mixup",
            "train.cutmix",
            "train.mix_prob",
            "train.mix_switch_prob",
            "train.mix_epochs",
        ),
        "every batch so far was mixed by it",
    ),
    "train.class_weights": "every step so far weighted its loss by it",
    "train.sampler": "every epoch's draw of images so far followed it",
    "train.sync_bn": "every BatchNorm statistic so far was computed with it",
    "train.ema": "the averaged weights in last.pt were made with that decay",
    "train.ema_warmup": "the averaged weights in last.pt were made with that warm-up",
    "train.accumulate": "every epoch's optimiser steps, and the batch each step saw, follow it",
    "train.weight_decay_norm_bias": "the optimiser's parameter groups follow it",
    "train.checkpoint_every": "it changes no number, but a run keeps the recipe it started with",
    "train": "the optimiser and the steps already taken were made with it",
    "data": "the weights were trained on that data",
    "model": "the weights in last.pt belong to that model",
}


def extended_plan(run_dir: Path, overrides: Sequence[str]) -> tuple[Any, int]:
    """The plan of ``run_dir`` with ``overrides`` (``train.epochs`` alone) applied, and the
    epochs it had planned; anything that would break exactness is one line naming the key."""
    from cnnkit.recipe import apply_overrides
    from cnnkit.train.plan import plan_of_run, recipe_of_run, resolved_text, sections

    plan = plan_of_run(run_dir)
    where = str(run_dir / "recipe.yaml")
    old = recipe_of_run(plan.recipe_text, where)
    new = apply_overrides(old, list(overrides))
    data, train = sections(new)
    changed = _changes(old.raw, new.raw, (plan.data, plan.train), (data, train))
    key = next((k for k in changed if k not in EXTENDABLE), None)
    if key is not None:
        given = [o.split("=", 1)[0] for o in overrides]
        named = next((g for g in given if g == key or g.startswith(f"{key}.")), None)
        raise InputError(_refusal(key, named or key))
    first = plan.recipe_text.split("\n", 1)[0].removeprefix("# ")
    note = first + "".join(f" --set {o}" for o in overrides)
    text = resolved_text(new, data, train, note) if changed else plan.recipe_text
    return dataclasses.replace(plan, train=train, recipe_text=text), plan.train.epochs


def unfinished(run_dir: Path, plan: Any) -> tuple[Any, int] | None:
    """An extension killed before its next ``last.pt`` left its ``recipe.yaml`` (the new total)
    beside the old checkpoint: its ``--set`` are on the recipe's first line, after the
    checkpoint's own. The plan that goes on with it, when they rebuild that text exactly."""
    import re

    try:
        disk = (run_dir / "recipe.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    mine, theirs = plan.recipe_text.split("\n", 1)[0], disk.split("\n", 1)[0]
    if disk == plan.recipe_text or not theirs.startswith(mine + " --set "):
        return None
    sets = re.findall(r" --set (\S+)", theirs[len(mine) :])
    try:
        extended, before = extended_plan(run_dir, sets)
    except InputError:
        return None
    return (extended, before) if extended.recipe_text == disk else None


def _changes(old: dict, new: dict, before: tuple, after: tuple) -> list[str]:
    """Every key the overrides changed: ``model`` (or another top-level key) for the model,
    ``data.KEY``/``train.KEY`` compared with every default resolved."""
    from cnnkit.train.config import to_plain

    changed = [
        "model" if name == "model" else name
        for name in sorted(set(old) | set(new))
        if name not in ("data", "train") and old.get(name) != new.get(name)
    ]
    for section, a, b in zip(("data", "train"), before, after, strict=True):
        plain_a, plain_b = to_plain(a), to_plain(b)
        changed += [f"{section}.{k}" for k in plain_a if plain_a[k] != plain_b[k]]
    return changed


def _refusal(key: str, given: str) -> str:
    section = key.split(".", 1)[0]
    reason = REASONS.get(key) or REASONS.get(section) or REASONS["model"]
    return (
        f"--set {given}: --resume continues a run exactly and may change only train.epochs "
        f"({key}: {reason}); train a new run to change it"
    )


def check_extension(state: dict[str, Any], before: int, train: Any) -> None:
    """Refuse an extension the checkpoint's progress makes inexact (see the module's text)."""
    done, status = state["epoch"], state["status"]
    if train.epochs == before:
        return
    if train.epochs < done:
        raise InputError(
            f"--set train.epochs={train.epochs}: the run has trained {done} epochs already; "
            "an extension gives more epochs, not fewer"
        )
    if train.scheduler in BY_TOTAL:
        raise InputError(
            f"--set train.epochs={train.epochs}: train.scheduler {train.scheduler} spreads the "
            f"learning rate over all the epochs, so {train.epochs} instead of {before} changes "
            "the rate of every step already trained; extend runs with scheduler constant or "
            "step, or train a new run"
        )
    if status == "early_stopped":
        raise InputError(
            f"--set train.epochs={train.epochs}: the run stopped early at epoch {done} "
            "(train.early_stop); a run of more epochs would have stopped there too"
        )


def reopen(resume: dict[str, Any] | None, epochs: int) -> dict[str, Any] | None:
    """A completed checkpoint of a run now planned longer trains on: its status is running."""
    if resume is None or resume["state"]["status"] != "completed" or resume["epoch"] >= epochs:
        return resume
    return {**resume, "state": {**resume["state"], "status": "running"}}
