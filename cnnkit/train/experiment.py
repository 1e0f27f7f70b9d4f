"""One training run end to end: data, model, run folder, ``fit``, test report, summary.

``Plan`` is everything a run needs, resolved from a recipe (``cnnkit.train.plan``); keeping it
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

from cnnkit.atomic import write_text
from cnnkit.errors import CnnkitError, DataError
from cnnkit.interrupts import Interrupted
from cnnkit.train import runs
from cnnkit.train.checkpoint import check_resumable, load_checkpoint, load_weights, save_atomic
from cnnkit.train.class_weights import weights_summary
from cnnkit.train.config import DataConfig, TrainConfig
from cnnkit.train.data import DataBundle, Split, load_data
from cnnkit.train.data.text import embedding_rows, write_vocab
from cnnkit.train.evaluate import full_report
from cnnkit.train.extend import check_extension, reopen
from cnnkit.train.loop import Diverged, Reporter, TrainState, fit
from cnnkit.train.runtime import World, end_world, pick_device, start_world
from cnnkit.train.staples import check_before_training
from cnnkit.train.start import start_model, trainable_params


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
    extended_from: int | None = None  # a resume with --set train.epochs: the epochs planned


def check_outputs(module: torch.nn.Module, data: DataBundle, where: str) -> None:
    """Fail before training when the model's output does not fit the data's targets."""
    x = data.train.head(2)
    if x.dim() == 4:  # train images may be stored larger for crop augmentation
        h, w = data.input_shape[1:]
        x = x[:, :, :h, :w]
    with torch.no_grad():
        was = module.training
        out = module.eval()(x)
        module.train(was)
    if data.task == "segment":
        _check_segment_outputs(out, data, where)
        return
    if out.dim() != 2 or out.shape[1] != data.outputs:
        what = "classes" if data.task == "classify" else "targets"
        raise DataError(
            f"the model outputs {list(out.shape[1:])} per image but the data has "
            f"{data.outputs} {what}; make the last layer produce {data.outputs}",
            where=where,
        )


def _check_segment_outputs(out: torch.Tensor, data: DataBundle, where: str) -> None:
    """A segmentation model scores every pixel: its output is ``[classes, H, W]``."""
    want = [data.outputs, *data.input_shape[1:]]
    if list(out.shape[1:]) != want:
        raise DataError(
            f"the model outputs {list(out.shape[1:])} per image but task segment needs "
            f"{want} (one score per class and pixel, {data.outputs} classes)",
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
        **({"vocab": list(data.vocab)} if data.vocab else {}),
        **_extension(plan),  # kept in the checkpoints: a later plain --resume still says so
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
    overwrite: bool = False,
    reporter: Reporter | None = None,
    grad_stats: bool = False,
    on_start: Callable[[Path, DataBundle, int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    tensorboard: bool = False,
) -> dict[str, Any]:
    """Train ``plan`` into a run folder (or continue ``resume_dir``); returns ``summary.json``.

    ``overwrite`` lets ``out`` replace the run already there (see ``cnnkit.train.runs``); a
    ``resume_dir`` without ``last.pt`` starts ``plan`` again there from scratch. Under
    ``torchrun`` every rank calls this; rank 0 alone creates the folder and writes files.
    ``on_note`` hears one-line notices (temporary files of a killed write removed).
    """
    world = start_world(plan.train.device)
    try:
        where = _Where(out, runs_root, resume_dir, overwrite)
        hooks = _Hooks(reporter, grad_stats, on_start, on_note, tensorboard)
        return _train_run(plan, world, where, hooks)
    finally:
        end_world(world)


@dataclass
class _Where:
    out: Path | None
    runs_root: Path
    resume_dir: Path | None
    overwrite: bool


def _train_run(plan: Plan, world: World, where: _Where, hooks: _Hooks) -> dict[str, Any]:
    started = time.perf_counter()
    device = pick_device(plan.train.device, world)  # fail on an unavailable device up front
    torch.manual_seed(plan.train.seed)  # recipe builds seed themselves; custom builders may not
    module = plan.build()
    data = load_data(plan.data, plan.input_shape, embedding=embedding_rows(module, plan.data))
    check_outputs(module, data, plan.source or plan.name)
    check_before_training(plan.train, data, world, device)
    params = sum(p.numel() for p in module.parameters())
    start = start_model(
        module, plan.train, plan.source or plan.name, where.resume_dir, hooks.on_note
    )

    if where.resume_dir is not None:
        run = where.resume_dir
    else:
        new = runs.new_run_dir(plan.name, where.runs_root, where.out) if world.main else None
        run = Path(world.share(str(new) if new is not None else None))
    try:
        with runs.locked(run) if world.main else contextlib.nullcontext():
            if world.main:
                _remove_stale(run, hooks)
            resume, replacing = _open(run, where, data, world, plan.recipe_text)
            if plan.extended_from is not None and resume is not None:
                check_extension(resume["state"], plan.extended_from, plan.train)
                resume = reopen(resume, plan.train.epochs)
            if resume is not None and isinstance(resume.get("init_from"), dict):
                start["init_from"] = resume["init_from"]  # resume wins: its weights, its record
            job = _Run(data, module, device, params, started, resume, replacing, start)
            return _write_guarded(plan, world, run, job, hooks)
    except Interrupted as err:
        if not err.hint and not (run / runs.LAST).is_file() and not (run / runs.RECIPE).is_file():
            err.hint = f"nothing was written to {run} yet: run the same command again"
        err.hint = err.hint or f"resume with {runs.resume_command(run)}"
        raise


def _remove_stale(run: Path, hooks: _Hooks) -> None:
    """Temporary files a killed write left in the (locked) folder go, in one line."""
    runs.recover(run)  # a half-done --overwrite first: its files are moved back, not removed
    removed = runs.remove_stale_temps(run)
    if removed and hooks.on_note is not None:
        hooks.on_note(runs.stale_note(run, removed))


def _open(
    run: Path, where: _Where, data: DataBundle, world: World, planned: str = ""
) -> tuple[dict[str, Any] | None, bool]:
    """Read the checkpoint to resume from (if any) and ready the locked folder for writing;
    returns it and whether an old run was moved aside for this one."""
    if world.main:
        runs.recover(run)  # a half-done --overwrite decides whether there is a last.pt
    resume = None
    if where.resume_dir is not None and (run / runs.LAST).is_file():
        resume = load_checkpoint(run / runs.LAST)
        check_resumable(resume, data.fingerprint, run / runs.LAST)
        runs.check_recipe_unchanged(run, resume["recipe"], planned)
    if not world.main:
        return resume, False
    if resume is not None:
        mode = "resume"
    elif where.resume_dir is not None:
        mode = "restart"
    else:
        mode = "overwrite" if where.overwrite else "new"
    replacing = runs.open_folder(run, mode)
    if resume is not None:
        state = resume["state"]
        runs.match_checkpoint(run, resume["epoch"], state["history"], state["status"])
    return resume, replacing


@dataclass
class _Run:
    """What ``_write_run`` trains: set up before the folder is locked and written."""

    data: DataBundle
    module: torch.nn.Module
    device: torch.device
    params: int
    started: float
    resume: dict[str, Any] | None
    replacing: bool = False  # an old run waits in .replaced/ for this one's first last.pt
    start: dict[str, Any] | None = None  # init_from and frozen records (cnnkit.train.start)


@dataclass
class _Hooks:
    reporter: Reporter | None
    grad_stats: bool
    on_start: Callable[[Path, DataBundle, int], None] | None
    on_note: Callable[[str], None] | None = None  # one line for the user (stale files removed)
    tensorboard: bool = False  # also log each epoch's row to RUN/tensorboard/


def _write_guarded(plan: Plan, world: World, run: Path, job: _Run, hooks: _Hooks) -> dict[str, Any]:
    """``_write_run``; when it replaces a run and ends, however, before its first ``last.pt``,
    the old run is put back: the folder holds one run or the other, never a mix or nothing."""
    if not job.replacing:
        return _write_run(plan, world, run, job, hooks)
    try:
        return _write_run(plan, world, run, job, hooks)
    except BaseException as err:
        if (run / runs.REPLACED).is_dir() and not (run / runs.LAST).is_file():
            runs.restore_replaced(run)
            back = f"nothing was replaced: {run} holds the previous run again"
            if isinstance(err, Interrupted):
                err.hint = f"{back} (run the same command to replace it)"
            elif isinstance(err, CnnkitError):
                err.args = (f"{err}; {back}",)
        raise


def _write_run(plan: Plan, world: World, run: Path, job: _Run, hooks: _Hooks) -> dict[str, Any]:
    """Train into the (locked) run folder and write its files; returns ``summary.json``.
    A resumed run that had finished trains nothing and keeps its summary (if it has one)."""
    data, resume = job.data, job.resume
    finished = resume is not None and resume["state"]["status"] in runs.FINISHED
    if world.main:
        write_text(run / runs.RECIPE, plan.recipe_text)
        if data.vocab:
            write_vocab(run, data.vocab)
        if hooks.on_start is not None and not finished:
            hooks.on_start(run, data, job.params)
    kept = {k: v for k, v in (job.start or {}).items() if k == "init_from"}
    save = _saver(world, run, job, {**_metadata(plan, data), **kept})
    close: Callable[[], None] | None = None
    if hooks.tensorboard and world.main and not finished:
        from cnnkit.train.tboard import logging_saver

        save, close = logging_saver(save, run, resume["epoch"] if resume else 0)
    try:
        return _train_into(plan, world, run, job, hooks, save)
    finally:
        if close is not None:
            close()


def _train_into(
    plan: Plan,
    world: World,
    run: Path,
    job: _Run,
    hooks: _Hooks,
    save: Callable[[str, dict[str, Any]], None],
) -> dict[str, Any]:
    """``fit`` into the run folder with ``save``, then the test report and ``summary.json``."""
    data, module, resume = job.data, job.module, job.resume
    finished = resume is not None and resume["state"]["status"] in runs.FINISHED
    if job.resume is not None:  # weights that do not fit are named here, with the file
        load_weights(module, job.resume["model"], str(run / runs.LAST))
    weights = [name for name, p in module.named_parameters() if p.requires_grad and p.dim() > 1]
    last_grads: dict[str, Any] = {}

    def record_grads(epoch: int, norms: dict[str, float]) -> None:
        last_grads.update(epoch=epoch, norms=norms)
        if world.main:
            runs.append_grad_stats(run, epoch, norms)

    summary = _base_summary(plan, world, run, job)
    try:
        state = fit(
            module,
            data,
            plan.train,
            save=save,
            resume=resume,
            reporter=hooks.reporter,
            world=world,
            grad_stats=record_grads if hooks.grad_stats else None,
        )
    except Diverged as err:
        err.summary = _diverged(world, run, summary, err)
        raise
    kept = None
    if finished and world.main:
        kept = runs.finished_summary(run, state.epoch, state.status)
    if kept is not None:
        world.barrier()
        return {**kept, "run_dir": str(run)}
    summary.update(_state_summary(state))
    if last_grads:
        summary["grad_stats"] = grad_summary(last_grads["epoch"], last_grads["norms"], weights)
    summary["time_s"] = time.perf_counter() - job.started
    if world.main and data.test is not None:
        summary.update(_test_report(run, job, data.test, plan.train.eval_batch_size))
    if world.main:
        runs.write_summary(run, summary)
    world.barrier()
    return summary


def _diverged(world: World, run: Path, summary: dict[str, Any], err: Diverged) -> dict[str, Any]:
    """The summary of a diverged run, from this run's last good ``last.pt`` (none yet: epoch 0;
    a run it replaces is in ``.replaced/``, never read)."""
    if world.main:
        last = load_checkpoint(run / runs.LAST) if (run / runs.LAST).exists() else None
        state = TrainState(**last["state"]) if last else TrainState()
        summary.update(_state_summary(state), status="diverged", error=str(err))
        runs.write_summary(run, summary)
    return summary


def _saver(
    world: World, run: Path, job: _Run, meta: dict[str, Any]
) -> Callable[[str, dict[str, Any]], None]:
    """``fit``'s checkpoint callback: ``best.pt``/``last.pt`` with the run's metadata, then
    ``metrics.csv`` (not for a mid-epoch ``last.pt``, kind ``step``); the first ``last.pt``
    of a run that replaces another commits it."""

    def save(kind: str, payload: dict[str, Any]) -> None:
        if not world.main:
            return
        name = runs.BEST if kind == "best" else runs.LAST
        save_atomic({**payload, **meta}, run / name)
        runs.kill_point(f"saved:{name}")
        if kind == "last":
            runs.write_metrics(run, payload["state"]["history"])
        if kind != "best" and job.replacing:  # "step": a mid-epoch last.pt (checkpoint_every)
            runs.commit_replace(run)

    return save


def _base_summary(plan: Plan, world: World, run: Path, job: _Run) -> dict[str, Any]:
    data = job.data
    return {
        "name": plan.name,
        "run_dir": str(run),
        "world_size": world.size,
        "device": str(job.device),
        **environment(),
        "params": job.params,
        "params_trainable": trainable_params(job.module),
        **(job.start or {}),
        "data": {
            "source": data.source,
            "task": data.task,
            "classes": len(data.classes),
            "train": len(data.train),
            "val": len(data.val) if data.val is not None else 0,
            "test": len(data.test) if data.test is not None else 0,
            "fingerprint": data.fingerprint,
            "cache": data.cache,
        },
        "seed": plan.train.seed,
        "monitor": plan.train.monitor,
        "epochs_planned": plan.train.epochs,
        **(_extension(plan) or _kept_extension(job.resume)),
        **weights_summary(plan.train, data),
    }


def _kept_extension(resume: dict[str, Any] | None) -> dict[str, Any]:
    kept = (resume or {}).get("extended")
    return {"extended": kept} if isinstance(kept, dict) else {}


def _extension(plan: Plan) -> dict[str, Any]:
    """``extended`` in the summary of a run a resume gave more epochs."""
    before = plan.extended_from
    if before is None or before == plan.train.epochs:
        return {}
    return {"extended": {"from": before, "to": plan.train.epochs}}


def _test_report(run: Path, job: _Run, test: Split, batch_size: int) -> dict[str, Any]:
    """The test split scored with ``best.pt`` (else ``last.pt``), as ``cnnkit eval`` does; with
    ``train.ema`` also with that checkpoint's EMA weights (``test_ema``)."""
    best = run / runs.BEST
    chosen = best if best.exists() else run / runs.LAST
    checkpoint = load_checkpoint(chosen)
    scored: dict[str, Any] = {}
    parts = [("test_ema", checkpoint["ema"]["model"])] if "ema" in checkpoint else []
    for key, weights in [*parts, ("test", checkpoint["model"])]:  # the module ends raw
        load_weights(job.module, weights, str(chosen))
        scored[key] = full_report(
            job.module.to(job.device),
            test.to(job.device),
            job.data.task,
            job.data.classes,
            batch_size,
        )
    return {"test_weights": chosen.name, "test": scored.pop("test"), **scored}


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
