"""The training loop: ``fit`` runs epochs of ``train_one_epoch`` and ``evaluate``.

Read top to bottom: ``fit`` prepares the device, optimiser and schedule, restores a checkpoint
when resuming, then per epoch trains, validates, keeps the best and last checkpoints and
decides whether to stop. Reproducibility rests on one rule: every random draw of epoch ``e``
(data order, augmentation, dropout) comes from generators seeded with ``(seed, e)``, so a run
resumed at epoch ``e`` replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from cnnkit.errors import CheckpointError, CnnkitError, InputError
from cnnkit.interrupts import Interrupted, deferred
from cnnkit.train.accumulate import Group, groups, optimizer_steps, share
from cnnkit.train.checkpoint import load_weights
from cnnkit.train.class_weights import class_weights
from cnnkit.train.config import TrainConfig
from cnnkit.train.data import DataBundle, Split
from cnnkit.train.data.augment import make_augment
from cnnkit.train.ema import Ema
from cnnkit.train.evaluate import evaluate
from cnnkit.train.midepoch import partial_record, restore_rng, rng_states
from cnnkit.train.mixing import Mixer, mixing_on, soft_cross_entropy
from cnnkit.train.optim import make_optimizer, make_scheduler
from cnnkit.train.runs import kill_point
from cnnkit.train.runtime import World, pick_device
from cnnkit.train.sampling import epoch_draw
from cnnkit.train.syncbn import convert_sync_bn

SYNC_EVERY = 25  # steps between host syncs for the progress bar and the NaN check


class Diverged(CnnkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept (exit code 1).

    ``summary`` is the run's ``summary.json`` (status ``diverged``) once ``train_run`` has
    written it, so a sweep can report the run and go on."""

    exit_code = 1
    summary: dict[str, Any] | None = None


class Reporter(Protocol):
    """What ``fit`` tells its caller (the CLI renders it; the library never prints)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, step: int, stats: dict[str, float] | None) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...


class Silent:
    """A reporter that reports nothing (library use, non-zero DDP ranks, sweeps with --json)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step(self, step: int, stats: dict[str, float] | None) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...


@dataclass
class TrainState:
    """The progress a checkpoint carries besides weights and optimiser state."""

    epoch: int = 0  # epochs completed
    best_value: float | None = None  # best value of train.monitor so far
    best_epoch: int | None = None
    stale_epochs: int = 0  # epochs since the monitor last improved (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per epoch
    status: str = "running"  # running | completed | early_stopped
    monitor: str = ""  # the metric best_value tracks (train.monitor, or its fallback)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Loop:
    """The pieces one epoch uses, made once by ``fit``."""

    model: torch.nn.Module  # what runs forward: maybe DDP- and/or compile-wrapped
    module: torch.nn.Module  # the plain model underneath, for state_dict and grad stats
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    autocast: Callable[[], Any]
    augment: Callable[..., Any] | None  # (x, g) -> x; segment: (x, y, g) -> (x, y)
    config: TrainConfig
    task: str
    world: World
    channels_last: bool
    grad_norms: torch.Tensor | None = None  # per-parameter sums of gradient norms this epoch
    mix: Callable[[int, int], Mixer] | None = None  # (epoch, rank) -> that epoch's mixup/cutmix
    pairs: bool = False  # augment takes and moves the targets: (x, y, g) -> (x, y)
    ema: Ema | None = None  # train.ema: the moving average of the weights


@dataclass
class Tally:
    """An epoch's running sums, on the device (the host reads them only every few steps)."""

    loss_sum: torch.Tensor  # sum of per-image losses (float64)
    correct: torch.Tensor  # classify: right answers (int64)
    seen: int = 0  # images

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor, task: str) -> None:
        self.seen += len(y)
        self.loss_sum.add_(loss.detach(), alpha=len(y))  # in-place: one kernel, no host sync
        if task == "classify":
            self.correct.add_((out.detach().argmax(1) == y).sum())


StepSaver = Callable[[int, Tally, torch.Generator], None]


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for epoch ``epoch``: a pure function of (seed, epoch), so resuming at any
    epoch boundary replays the same draws with no RNG state to save."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def train_one_epoch(
    loop: Loop,
    split: Split,
    epoch: int,
    reporter: Reporter,
    sync_every: int = SYNC_EVERY,
    resume: dict[str, Any] | None = None,
    on_step: StepSaver | None = None,
) -> dict[str, float]:
    """One pass over this rank's share of ``split``; returns the epoch's train metrics.

    Loss and accuracy are summed on the device; the host reads them only every ``sync_every``
    optimiser steps (progress bar and NaN check) and at the end, so the GPU is never stalled.
    ``resume`` is a mid-epoch checkpoint's ``partial`` record to continue from; ``on_step``
    saves one every ``train.checkpoint_every`` steps and, the steps then being held from
    Ctrl-C, at the step a signal arrives in (the ``Interrupted`` then goes on).
    """
    world = loop.world
    order, g = _epoch_order(loop, split, epoch)
    mixer = loop.mix(epoch, world.rank) if loop.mix is not None else None
    per_rank = max(1, loop.config.batch_size // world.size)
    plan = groups(len(order), per_rank, loop.config.accumulate)
    loop.model.train()
    device = split.device
    zero = partial(torch.zeros, (), device=device)
    tally = Tally(zero(dtype=torch.float64), zero(dtype=torch.int64))
    first = 0 if resume is None else _continue(loop, tally, resume, g, epoch)
    every, guard = loop.config.checkpoint_every, deferred if on_step else contextlib.nullcontext
    offset = plan[first].starts[0] if first < len(plan) else len(order)
    batches = split.batches(order[offset:], per_rank, epoch)  # memory or stream, from step first
    for step in range(first, len(plan)):
        try:
            with guard():  # with on_step, a Ctrl-C waits for the step to end
                _optimizer_step(loop, batches, plan[step], g, tally, mixer)
                last = step == len(plan) - 1
                synced = (step + 1) % sync_every == 0 or last
                stats = _running_stats(loop, tally, epoch, step) if synced else None
                reporter.step(step + 1, stats)
                if on_step is not None:
                    kill_point("train:step")  # test-only: a signal after this step
                    if every is not None and (step + 1) % every == 0 and not last:
                        on_step(step + 1, tally, g)
        except Interrupted:
            if on_step is not None:
                on_step(step + 1, tally, g)
            raise
    return _epoch_metrics(loop, tally, device, epoch)


def _optimizer_step(
    loop: Loop,
    batches: Iterator[tuple[torch.Tensor, ...]],
    group: Group,
    g: torch.Generator,
    tally: Tally,
    mixer: Mixer | None = None,
) -> None:
    """One optimiser step over ``group``'s micro-batches (``train.accumulate``): each mean loss
    weighted by its share of the group's images, then step, schedule and EMA."""
    loop.optimizer.zero_grad(set_to_none=True)
    for _ in group.starts:
        x, y = next(batches)
        if loop.augment is not None and loop.pairs:
            x, y = loop.augment(x, y, g)  # masks and points move with their images
        elif loop.augment is not None:
            x = loop.augment(x, g)
        target = y
        if mixer is not None:  # soft targets; accuracy counts the label with the larger share
            x, target, y = mixer(x, y)
        if loop.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with loop.autocast():
            out = loop.model(x)
            loss = loop.loss_fn(out, target)
        weight = share(len(y), group)
        backward(loop, loss if weight == 1 else loss * weight)
        tally.add(loss, out, y, loop.task)
    optimizer_step(loop)
    loop.scheduler.step()
    if loop.ema is not None:
        loop.ema.update(loop.module)


def _continue(
    loop: Loop, tally: Tally, record: dict[str, Any], g: torch.Generator, epoch: int
) -> int:
    """Restore a mid-epoch checkpoint's sums and random state; returns the steps done."""
    if record["epoch"] != epoch:
        raise CheckpointError(
            f"its mid-epoch record is of epoch {record['epoch'] + 1}, not {epoch + 1}",
            where="last.pt",
        )
    device = tally.loss_sum.device
    tally.loss_sum.copy_(record["loss_sum"])
    tally.correct.copy_(record["correct"])
    tally.seen = record["seen"]
    if loop.grad_norms is not None and record["grad_norms"] is not None:
        loop.grad_norms.copy_(record["grad_norms"])
    restore_rng(record["rng"], g, device)
    return record["step"]


def _epoch_metrics(loop: Loop, tally: Tally, device: torch.device, epoch: int) -> dict[str, float]:
    """The epoch's train loss (and accuracy) over all ranks; a non-finite loss stops the run."""
    seen = torch.tensor(float(tally.seen), device=device)
    totals = torch.stack([tally.loss_sum, tally.correct.double(), seen])
    loss_sum, correct, count = loop.world.sum(totals.double()).tolist()
    if not math.isfinite(loss_sum):
        raise Diverged(
            f"loss became {loss_sum} in epoch {epoch + 1}; the last good checkpoint is kept"
        )
    metrics = {"train_loss": loss_sum / count}
    if loop.task == "classify":
        metrics["train_accuracy"] = correct / count
    metrics["images"] = count
    return metrics


def _epoch_order(loop: Loop, split: Split, epoch: int) -> tuple[torch.Tensor, torch.Generator]:
    """This rank's image order for the epoch and its augmentation generator; seeds the global
    RNG (dropout) too, so a resumed run replays the same epoch."""
    c, world = loop.config, loop.world
    order = epoch_draw(c.sampler, split.y, epoch_generator(c.seed, epoch))  # all ranks
    # Augmentation and dropout differ per rank (each sees other images), yet replay on resume.
    g = epoch_generator(c.seed + 7919 * (world.rank + 1), epoch, split.device)
    torch.manual_seed(c.seed * 1_000_003 + epoch + 500_009 * (world.rank + 1))
    order = order[: len(order) - len(order) % world.size][world.rank :: world.size]
    return order.to(split.device), g


def _running_stats(loop: Loop, tally: Tally, epoch: int, step: int) -> dict[str, float]:
    """The running loss (and accuracy) for the progress bar: the one host sync every few
    steps, which also stops a diverged run."""
    loss_now, correct_now = torch.stack([tally.loss_sum, tally.correct.double()]).tolist()
    seen = tally.seen
    if not math.isfinite(loss_now):
        raise Diverged(
            f"loss became {loss_now} in epoch {epoch + 1} by step {step + 1}; stopped. "
            "The last good checkpoint is kept; lower train.lr or set train.clip_grad_norm"
        )
    stats = {"loss": loss_now / seen}
    if loop.task == "classify":  # regression has no accuracy to show
        stats["accuracy"] = correct_now / seen
    return stats


def backward(loop: Loop, loss: torch.Tensor) -> None:
    """Backward pass of one (micro-)batch, its gradients added to the parameters' (AMP-aware)."""
    if loop.scaler is not None:
        loop.scaler.scale(loss).backward()
    else:
        loss.backward()


def optimizer_step(loop: Loop) -> None:
    """Optional gradient statistics and clipping, then the optimiser step (AMP-aware)."""
    if loop.scaler is not None:
        loop.scaler.unscale_(loop.optimizer)
    if loop.grad_norms is not None:
        params = [p for p in loop.module.parameters() if p.requires_grad]
        norms = torch._foreach_norm(
            [p.grad if p.grad is not None else p.new_zeros(1) for p in params]
        )
        loop.grad_norms += torch.stack(norms).to(loop.grad_norms.dtype)
    if loop.config.clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(loop.module.parameters(), loop.config.clip_grad_norm)
    if loop.scaler is not None:
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
    else:
        loop.optimizer.step()


def _loss_fn(
    task: str, c: TrainConfig, weight: torch.Tensor | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task == "segment":
        return partial(_pixel_cross_entropy, smoothing=c.label_smoothing, weight=weight)
    if task == "classify" and mixing_on(c):  # label smoothing is in the soft targets
        return partial(soft_cross_entropy, weight=weight)
    if task == "classify":
        return partial(_cross_entropy, smoothing=c.label_smoothing, weight=weight)
    return lambda out, y: F.mse_loss(out.float(), y)


def _cross_entropy(
    out: torch.Tensor, y: torch.Tensor, smoothing: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """torch's (weighted) mean; a batch whose labels all weigh 0 scores 0, not 0/0 = NaN."""
    if weight is None:
        return F.cross_entropy(out.float(), y, label_smoothing=smoothing)
    total = F.cross_entropy(
        out.float(), y, weight=weight, label_smoothing=smoothing, reduction="sum"
    )
    mass = weight[y].sum()
    return total / torch.where(mass > 0, mass, 1)


def _pixel_cross_entropy(
    out: torch.Tensor, y: torch.Tensor, smoothing: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """The mean over scored pixels (mask != IGNORE, torch's default ignore_index), weighted
    as torch's mean is (divided by the scored pixels' class weights); a batch whose pixels
    are all ignored scores 0, where torch's mean would be 0/0 = NaN (a false "diverged")."""
    total = F.cross_entropy(
        out.float(), y, weight=weight, label_smoothing=smoothing, reduction="sum"
    )
    scored = y != -100
    if weight is None:
        return total / scored.sum().clamp_min(1)
    mass = torch.where(scored, weight[y.clamp_min(0)], 0).sum()
    return total / torch.where(mass > 0, mass, 1)


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(c: TrainConfig, device: torch.device) -> Callable[[], Any]:
    if c.amp == "off":
        return contextlib.nullcontext
    if c.amp == "fp16" and device.type != "cuda":
        raise InputError(f"train.amp: fp16 needs a CUDA device, training runs on {device.type}")
    return partial(torch.autocast, device_type=device.type, dtype=_AMP_DTYPES[c.amp])


def _improved(value: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return value > best if monitor.endswith(("accuracy", "miou")) else value < best


def monitored(monitor: str, row: dict[str, Any]) -> str:
    """The metric ``train.monitor`` resolves to in an epoch row.

    Regression has no accuracy, so an ``*_accuracy`` monitor means the matching loss (the
    default ``val_accuracy`` picks ``best.pt`` by ``val_loss`` when there is a val split);
    without a val split, ``val_*`` monitors fall back to the train loss.
    """
    if monitor in row:
        return monitor
    loss = monitor.replace("_accuracy", "_loss")
    return loss if loss in row else "train_loss"


Checkpointer = Callable[[str, dict[str, Any]], None]


def prepare(
    module: torch.nn.Module,
    data: DataBundle,
    c: TrainConfig,
    world: World,
    resume: dict[str, Any] | None,
) -> tuple[Loop, TrainState, int]:
    """Move the model to its device, make optimiser, schedule and scaler, restore a checkpoint,
    wrap for DDP / torch.compile. Returns the loop, the progress so far and optimiser steps
    per epoch (``train.accumulate`` micro-batches each)."""
    device, channels_last = _place(module, c, world)
    per_rank = max(1, c.batch_size // world.size)
    micro = math.ceil((len(data.train) - len(data.train) % world.size) // world.size / per_rank)
    steps = optimizer_steps(micro, c.accumulate)
    optimizer = make_optimizer(module, c)
    scheduler = make_scheduler(optimizer, c, steps)
    scaler = torch.amp.GradScaler("cuda") if c.amp == "fp16" else None
    ema = Ema(module, c.ema, c.ema_warmup) if c.ema is not None else None
    state = TrainState()
    if resume is not None:
        state = _restore(resume, module, optimizer, scheduler, scaler)
        _restore_ema(resume, ema)
    module = convert_sync_bn(module, c, world)
    model = module
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    if c.compile:
        model = torch.compile(model)
    loop = Loop(
        model=model,
        module=module,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        loss_fn=_loss_fn(data.task, c, _weights_on(c, data, device)),
        autocast=_autocast(c, device),
        augment=_augment(data),
        pairs=data.task == "segment" or data.target_kind == "points",
        config=c,
        task=data.task,
        world=world,
        channels_last=channels_last,
        mix=partial(Mixer, c, len(data.classes)) if mixing_on(c) else None,
        ema=ema,
    )
    return loop, state, steps


def _weights_on(c: TrainConfig, data: DataBundle, device: torch.device) -> torch.Tensor | None:
    weights = class_weights(c, data)
    return None if weights is None else weights.float().to(device)


def _place(module: torch.nn.Module, c: TrainConfig, world: World) -> tuple[torch.device, bool]:
    """Move ``module`` to its device (NHWC on CUDA with ``channels_last``); refuse what this
    world cannot do."""
    device = pick_device(c.device, world)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    if c.checkpoint_every is not None and world.size > 1:
        raise InputError(
            "train.checkpoint_every: mid-epoch checkpoints are not supported under torchrun "
            "yet (every rank's random state would have to be saved); remove it"
        )
    module.to(device)
    channels_last = c.channels_last and device.type == "cuda"
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return device, channels_last


def _restore_ema(resume: dict[str, Any], ema: Ema | None) -> None:
    """The EMA a checkpoint carries (a run's config cannot change whether it has one)."""
    if ema is None:
        return
    try:
        ema.load_state_dict(resume["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(f"its EMA weights do not fit: {message}", where="last.pt") from None


def ema_part(loop: Loop) -> dict[str, Any]:
    """A checkpoint's ``ema`` entry (none without ``train.ema``)."""
    return {"ema": loop.ema.state_dict()} if loop.ema is not None else {}


def _augment(data: DataBundle) -> Callable[..., Any] | None:
    size = tuple(data.input_shape[1:])
    if data.task == "segment":
        from cnnkit.train.data.segment_augment import make_pair_augment

        return make_pair_augment(data.augment, size)
    if data.target_kind == "points":
        from cnnkit.train.data.points import make_points_augment

        return make_points_augment(data.augment, size)
    return make_augment(data.augment, size)


def checkpoint(loop: Loop, state: TrainState) -> dict[str, Any]:
    """Everything ``--resume`` needs (plain tensors and numbers: ``weights_only``-loadable)."""
    return {
        "model": loop.module.state_dict(),
        "epoch": state.epoch,
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict() if loop.scaler is not None else {},
        "state": state.as_dict(),
        **ema_part(loop),
    }


def record(state: TrainState, row: dict[str, Any], c: TrainConfig) -> tuple[bool, bool]:
    """Add the epoch's row to ``state``; return (improved the monitor, stop early now)."""
    state.history.append(row)
    state.epoch = row["epoch"]
    state.monitor = monitored(c.monitor, row)
    improved = _improved(row[state.monitor], state.best_value, state.monitor)
    if improved:
        state.best_value, state.best_epoch, state.stale_epochs = row[state.monitor], state.epoch, 0
    else:
        state.stale_epochs += 1
    stop = c.early_stop is not None and state.stale_epochs >= c.early_stop
    done = state.epoch == c.epochs
    state.status = "completed" if done else ("early_stopped" if stop else "running")
    return improved, stop


def fit(
    module: torch.nn.Module,
    data: DataBundle,
    c: TrainConfig,
    *,
    save: Checkpointer | None = None,
    resume: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
    world: World = World(),
    grad_stats: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainState:
    """Train ``module`` on ``data`` as ``c`` says; returns the final ``TrainState``.

    ``save(name, payload)`` receives ``"best"`` when the monitored metric improves and
    ``"last"`` after every epoch (the caller adds recipe and data metadata and writes
    atomically); ``resume`` is a loaded checkpoint to continue from; ``grad_stats(epoch,
    norms)`` receives each parameter's mean gradient L2 norm per epoch when given. A
    ``resume`` that completed or stopped early returns at once.
    """
    reporter = reporter or Silent()
    loop, state, steps = prepare(module, data, c, world, resume)
    if state.status in ("completed", "early_stopped"):
        return state  # a finished run resumes to itself: no epoch past its end or its stop
    device = next(module.parameters()).device
    data = data.to(device)
    if loop.channels_last:
        # Store the images NHWC once: batches gathered from them stay NHWC, so the per-step
        # conversion below is a no-op instead of a copy of every batch.
        data = data.channels_last()
    params = [name for name, p in module.named_parameters() if p.requires_grad]
    # DDP forwards can hold collectives, and ranks may get unequal eval batches: evaluate the
    # plain module there (validation sums are all-reduced once at the end instead).
    scorer = loop.module if world.size > 1 else loop.model

    partial = (resume or {}).get("partial")  # a mid-epoch last.pt (train.checkpoint_every)
    for epoch in range(state.epoch, c.epochs):
        reporter.epoch_start(epoch, c.epochs, steps)
        if grad_stats is not None:
            loop.grad_norms = torch.zeros(len(params), device=device, dtype=torch.float64)
        row = _epoch_row(loop, data, epoch, (state, reporter, save), scorer, partial)
        partial = None
        improved, stop = record(state, row, c)
        if grad_stats is not None and loop.grad_norms is not None:
            grad_stats(epoch + 1, dict(zip(params, (loop.grad_norms / steps).tolist())))
        if save is not None:
            with deferred():  # Ctrl-C here: best.pt, last.pt, metrics.csv complete, then stop
                if improved:
                    best = {"model": module.state_dict(), "epoch": state.epoch, **ema_part(loop)}
                    save("best", best)
                save("last", checkpoint(loop, state))
        reporter.epoch_end(row)
        if stop:
            break
    return state


def _epoch_row(
    loop: Loop,
    data: DataBundle,
    epoch: int,
    run: tuple[TrainState, Reporter, Checkpointer | None],
    scorer: torch.nn.Module,
    partial: dict[str, Any] | None,
) -> dict[str, Any]:
    """Train epoch ``epoch`` (from a mid-epoch ``partial`` record if given), then score the
    raw weights and the EMA on val: the epoch's metrics row."""
    state, reporter, save = run
    c, world = loop.config, loop.world
    started = time.perf_counter()
    lr = partial["lr"] if partial is not None else loop.optimizer.param_groups[0]["lr"]
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
    on_step = None
    if save is not None and c.checkpoint_every is not None:
        on_step = partial_saver(loop, state, save, epoch, lr)
    row.update(train_one_epoch(loop, data.train, epoch, reporter, resume=partial, on_step=on_step))
    train_seconds = time.perf_counter() - started
    if data.val is not None:
        val = evaluate(scorer, data.val, data.task, c.eval_batch_size, world, loop.autocast)
        row.update({f"val_{k}": v for k, v in val.items()})
        if loop.ema is not None:
            ema = loop.ema.module
            val = evaluate(ema, data.val, data.task, c.eval_batch_size, world, loop.autocast)
            row.update({f"val_{k}_ema": v for k, v in val.items()})
    row["time_s"] = time.perf_counter() - started
    resumed = partial["seen"] if partial is not None else 0  # trained before the resume
    row["images_per_s"] = (row.pop("images") - resumed) / train_seconds
    return row


def partial_saver(
    loop: Loop, state: TrainState, save: Checkpointer, epoch: int, lr: float
) -> StepSaver:
    """``train_one_epoch``'s mid-epoch save: ``last.pt`` with the epoch's ``partial`` record
    (``save`` hears kind ``"step"``: a ``last.pt`` that adds no metrics row)."""

    def saved(step: int, tally: Tally, g: torch.Generator) -> None:
        sums = (tally.loss_sum, tally.correct, tally.seen)
        rng = rng_states(g, tally.loss_sum.device)
        record = partial_record(epoch, step, lr, sums, loop.grad_norms, rng)
        with deferred():
            save("step", {**checkpoint(loop, state), "partial": record})

    return saved


def _restore(resume: dict[str, Any], module, optimizer, scheduler, scaler) -> TrainState:
    """Load a checkpoint's weights and optimiser state; a part that does not fit (a checkpoint
    edited by hand, or from another recipe, with a valid checksum) is one line naming it."""
    load_weights(module, resume["model"], "last.pt")
    try:
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if scaler is not None and resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        return TrainState(**resume["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise CheckpointError(
            f"its optimiser or scheduler state does not fit the recipe: {message}",
            where="last.pt",
        ) from None
