"""One training run end to end: data, model, run folder, ``fit``, test report, summary.

``Plan`` is everything a run needs, resolved from a recipe (``cnnkit.nn.plan``); keeping it
separate from the recipe layer lets tests and library users train any ``nn.Module``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnkit import runs
from cnnkit.atomic import write_text
from cnnkit.errors import DataError
from cnnkit.nn.checkpoint import check_resumable, load_checkpoint, save_atomic
from cnnkit.nn.data import DataBundle, load_data
from cnnkit.nn.evaluate import full_report
from cnnkit.nn.runtime import World, end_world, pick_device, start_world
from cnnkit.nn.training import Diverged, Reporter, TrainState, fit
from cnnkit.runconfig import DataConfig, TrainConfig


@dataclass
class Plan:
    """A run, resolved: what to build, on what data, how to train it."""

    name: str  # run-name prefix, usually the recipe's file stem
    recipe_text: str  # the fully resolved recipe (YAML), saved in the run and its checkpoints
    input_shape: tuple[int, ...]  # [C, H, W] without the batch
    data: DataConfig
    train: TrainConfig
    build: Callable[[], torch.nn.Module]  # a fresh, initialised model
    source: str = ""  # the recipe file, for messages


def check_outputs(module: torch.nn.Module, data: DataBundle, where: str) -> None:
    """Fail before training when the model's output does not fit the data's targets."""
    h, w = data.input_shape[1:]
    x = data.train.x[:2, :, :h, :w]  # train images may be stored larger for crop augmentation
    with torch.no_grad():
        was = module.training
        out = module.eval()(x)
        module.train(was)
    if out.dim() != 2 or out.shape[1] != data.outputs:
        what = "classes" if data.task == "classify" else "targets"
        raise DataError(
            f"the model outputs {list(out.shape[1:])} per image but the data has "
            f"{data.outputs} {what}; make the last layer produce {data.outputs}",
            where=where,
        )


def _metadata(plan: Plan, data: DataBundle) -> dict[str, Any]:
    return {
        "recipe": plan.recipe_text,
        "name": plan.name,
        "task": data.task,
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "input_shape": list(plan.input_shape),
        "data_fingerprint": data.fingerprint,
    }


def environment() -> dict[str, Any]:
    """What a result depends on besides the recipe: library versions and the intra-op thread
    count (float reductions are split per thread, so one thread and two give other numbers)."""
    import platform

    import cnnkit

    return {
        "versions": {
            "cnnkit": cnnkit.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
    }


def train_run(
    plan: Plan,
    *,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    resume_dir: Path | None = None,
    reporter: Reporter | None = None,
    grad_stats: bool = False,
    on_start: Callable[[Path, DataBundle, int], None] | None = None,
) -> dict[str, Any]:
    """Train ``plan`` into a run folder (or continue ``resume_dir``); returns ``summary.json``.

    Under ``torchrun`` every rank calls this; rank 0 alone creates the folder and writes files.
    """
    world = start_world(plan.train.device)
    try:
        return _train_run(plan, world, out, runs_root, resume_dir, reporter, grad_stats, on_start)
    finally:
        end_world(world)


def _train_run(
    plan: Plan,
    world: World,
    out: Path | None,
    runs_root: Path,
    resume_dir: Path | None,
    reporter: Reporter | None,
    grad_stats: bool,
    on_start: Callable[[Path, DataBundle, int], None] | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    hooks = _Hooks(reporter, grad_stats, on_start)
    device = pick_device(plan.train.device, world)  # fail on an unavailable device up front
    torch.manual_seed(plan.train.seed)  # recipe builds seed themselves; custom builders may not
    module = plan.build()
    data = load_data(plan.data, plan.input_shape)
    check_outputs(module, data, plan.source or plan.name)
    params = sum(p.numel() for p in module.parameters())

    if resume_dir is not None:
        run = resume_dir
    else:
        run = Path(
            world.share(str(runs.new_run_dir(plan.name, runs_root, out)) if world.main else None)
        )
    with runs.locked(run) if world.main else contextlib.nullcontext():
        resume = None
        if resume_dir is not None:
            resume = load_checkpoint(run / runs.LAST)
            check_resumable(resume, data.fingerprint, run / runs.LAST)
            runs.check_recipe_unchanged(run, resume["recipe"])
        return _write_run(
            plan, world, run, _Run(data, module, device, params, started, resume), hooks
        )


@dataclass
class _Run:
    """What ``_write_run`` trains: set up before the folder is locked and written."""

    data: DataBundle
    module: torch.nn.Module
    device: torch.device
    params: int
    started: float
    resume: dict[str, Any] | None


@dataclass
class _Hooks:
    reporter: Reporter | None
    grad_stats: bool
    on_start: Callable[[Path, DataBundle, int], None] | None


def _write_run(plan: Plan, world: World, run: Path, job: _Run, hooks: _Hooks) -> dict[str, Any]:
    """Train into the (locked) run folder and write its files; returns ``summary.json``."""
    data, module, device, params, started = (
        job.data,
        job.module,
        job.device,
        job.params,
        job.started,
    )
    resume, reporter, grad_stats, on_start = (
        job.resume,
        hooks.reporter,
        hooks.grad_stats,
        hooks.on_start,
    )
    meta = _metadata(plan, data)
    if world.main:
        write_text(run / runs.RECIPE, plan.recipe_text)
        if on_start is not None:
            on_start(run, data, params)

    def save(kind: str, payload: dict[str, Any]) -> None:
        if not world.main:
            return
        save_atomic({**payload, **meta}, run / (runs.BEST if kind == "best" else runs.LAST))
        if kind == "last":
            runs.write_metrics(run, payload["state"]["history"])

    weights = [name for name, p in module.named_parameters() if p.requires_grad and p.dim() > 1]
    last_grads: dict[str, Any] = {}

    def record_grads(epoch: int, norms: dict[str, float]) -> None:
        last_grads.update(epoch=epoch, norms=norms)
        if world.main:
            runs.append_grad_stats(run, epoch, norms)

    summary: dict[str, Any] = {
        "name": plan.name,
        "run_dir": str(run),
        "world_size": world.size,
        "device": str(device),
        **environment(),
        "params": params,
        "data": {
            "source": data.source,
            "task": data.task,
            "classes": len(data.classes),
            "train": len(data.train),
            "val": len(data.val) if data.val is not None else 0,
            "test": len(data.test) if data.test is not None else 0,
            "fingerprint": data.fingerprint,
        },
        "seed": plan.train.seed,
        "monitor": plan.train.monitor,
        "epochs_planned": plan.train.epochs,
    }
    try:
        state = fit(
            module,
            data,
            plan.train,
            save=save,
            resume=resume,
            reporter=reporter,
            world=world,
            grad_stats=record_grads if grad_stats else None,
        )
    except Diverged as err:
        if world.main:
            last = load_checkpoint(run / runs.LAST) if (run / runs.LAST).exists() else None
            state = TrainState(**last["state"]) if last else TrainState()
            summary.update(_state_summary(state), status="diverged", error=str(err))
            runs.write_summary(run, summary)
        err.summary = summary
        raise

    summary.update(_state_summary(state))
    if last_grads:
        summary["grad_stats"] = grad_summary(last_grads["epoch"], last_grads["norms"], weights)
    summary["time_s"] = time.perf_counter() - started
    if world.main and data.test is not None:
        best = run / runs.BEST
        weights = load_checkpoint(best if best.exists() else run / runs.LAST)["model"]
        module.load_state_dict(weights)
        summary["test_weights"] = runs.BEST if best.exists() else runs.LAST
        summary["test"] = full_report(
            module.to(device),
            data.test.to(device),
            data.task,
            data.classes,
            plan.train.eval_batch_size,
        )
    if world.main:
        runs.write_summary(run, summary)
    world.barrier()
    return summary


def grad_summary(epoch: int, norms: dict[str, float], weights: list[str]) -> dict[str, Any]:
    """First against last weight tensor's mean gradient norm in one epoch.

    Vanishing gradients show as a ratio far below 1: the layers nearest the input get a
    small fraction of the signal the output layer gets, so they barely learn. Biases and
    normalisation scales are left out (``weights`` are the tensors of rank 2 and more).
    """
    names = [n for n in weights if n in norms] or list(norms)
    first, last = names[0], names[-1]
    ratio = norms[first] / norms[last] if norms[last] else None
    return {
        "epoch": epoch,
        "first": {"parameter": first, "grad_norm": norms[first]},
        "last": {"parameter": last, "grad_norm": norms[last]},
        "ratio": ratio,
    }


def _state_summary(state: TrainState) -> dict[str, Any]:
    return {
        "status": state.status,
        "epochs": state.epoch,
        "best": {"epoch": state.best_epoch, "value": state.best_value, "metric": state.monitor},
        "final": state.history[-1] if state.history else {},
    }
