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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from cnnkit.errors import CheckpointError, CnnkitError, InputError
from cnnkit.interrupts import deferred
from cnnkit.train.checkpoint import load_weights
from cnnkit.train.config import TrainConfig
from cnnkit.train.data import DataBundle, Split
from cnnkit.train.data.augment import make_augment
from cnnkit.train.evaluate import evaluate
from cnnkit.train.optim import make_optimizer, make_scheduler
from cnnkit.train.runtime import World, pick_device

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


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for epoch ``epoch``: a pure function of (seed, epoch), so resuming at any
    epoch boundary replays the same draws with no RNG state to save."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def train_one_epoch(
    loop: Loop, split: Split, epoch: int, reporter: Reporter, sync_every: int = SYNC_EVERY
) -> dict[str, float]:
    """One pass over this rank's share of ``split``; returns the epoch's train metrics.

    Loss and accuracy are summed on the device; the host reads them only every ``sync_every``
    steps (progress bar and NaN check) and at the end, so the GPU is never stalled per step.
    """
    world, model = loop.world, loop.model
    order, g = _epoch_order(loop, split, epoch)
    per_rank = max(1, loop.config.batch_size // world.size)
    steps = math.ceil(len(order) / per_rank)
    model.train()
    device = split.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # sum of per-image losses
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    for step, (x, y) in enumerate(split.batches(order, per_rank, epoch)):  # memory or stream
        if loop.augment is not None and loop.task == "segment":
            x, y = loop.augment(x, y, g)  # masks move with their images
        elif loop.augment is not None:
            x = loop.augment(x, g)
        if loop.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with loop.autocast():
            out = model(x)
            loss = loop.loss_fn(out, y)
        loop.optimizer.zero_grad(set_to_none=True)
        backward_and_step(loop, loss)
        loop.scheduler.step()
        seen += len(y)
        loss_sum.add_(loss.detach(), alpha=len(y))  # in-place: one kernel, no host sync
        if loop.task == "classify":
            correct.add_((out.detach().argmax(1) == y).sum())
        if (step + 1) % sync_every == 0 or step == steps - 1:
            reporter.step(step + 1, _running_stats(loop, loss_sum, correct, seen, epoch, step))
        else:
            reporter.step(step + 1, None)
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device)])
    loss_sum, correct, count = world.sum(totals.double()).tolist()
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
    order = torch.randperm(len(split), generator=epoch_generator(c.seed, epoch))  # all ranks
    # Augmentation and dropout differ per rank (each sees other images), yet replay on resume.
    g = epoch_generator(c.seed + 7919 * (world.rank + 1), epoch, split.device)
    torch.manual_seed(c.seed * 1_000_003 + epoch + 500_009 * (world.rank + 1))
    order = order[: len(order) - len(order) % world.size][world.rank :: world.size]
    return order.to(split.device), g


def _running_stats(
    loop: Loop, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, epoch: int, step: int
) -> dict[str, float]:
    """The running loss (and accuracy) for the progress bar: the one host sync every few
    steps, which also stops a diverged run."""
    loss_now, correct_now = torch.stack([loss_sum, correct.double()]).tolist()
    if not math.isfinite(loss_now):
        raise Diverged(
            f"loss became {loss_now} in epoch {epoch + 1} by step {step + 1}; stopped. "
            "The last good checkpoint is kept; lower train.lr or set train.clip_grad_norm"
        )
    stats = {"loss": loss_now / seen}
    if loop.task == "classify":  # regression has no accuracy to show
        stats["accuracy"] = correct_now / seen
    return stats


def backward_and_step(loop: Loop, loss: torch.Tensor) -> None:
    """Backward pass, optional gradient statistics and clipping, optimiser step (AMP-aware)."""
    if loop.scaler is not None:
        loop.scaler.scale(loss).backward()
        loop.scaler.unscale_(loop.optimizer)
    else:
        loss.backward()
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


def _loss_fn(task: str, c: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if task == "segment":
        return partial(_pixel_cross_entropy, smoothing=c.label_smoothing)
    if task == "classify":
        return partial(_cross_entropy, smoothing=c.label_smoothing)
    return lambda out, y: F.mse_loss(out.float(), y)


def _cross_entropy(out: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.cross_entropy(out.float(), y, label_smoothing=smoothing)


def _pixel_cross_entropy(out: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """The mean over scored pixels (mask != IGNORE, torch's default ignore_index); a batch
    whose pixels are all ignored scores 0, where torch's mean would be 0/0 = NaN (a
    false "diverged")."""
    total = F.cross_entropy(out.float(), y, label_smoothing=smoothing, reduction="sum")
    return total / (y != -100).sum().clamp_min(1)


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
    return value > best if monitor.endswith("accuracy") else value < best


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
    wrap for DDP / torch.compile. Returns the loop, the progress so far and steps per epoch."""
    device = pick_device(c.device, world)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    module.to(device)
    channels_last = c.channels_last and device.type == "cuda"
    if channels_last:
        module.to(memory_format=torch.channels_last)
    per_rank = max(1, c.batch_size // world.size)
    steps = math.ceil((len(data.train) - len(data.train) % world.size) // world.size / per_rank)
    optimizer = make_optimizer(module, c)
    scheduler = make_scheduler(optimizer, c, steps)
    scaler = torch.amp.GradScaler("cuda") if c.amp == "fp16" else None
    state = TrainState()
    if resume is not None:
        state = _restore(resume, module, optimizer, scheduler, scaler)
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
        loss_fn=_loss_fn(data.task, c),
        autocast=_autocast(c, device),
        augment=_augment(data),
        config=c,
        task=data.task,
        world=world,
        channels_last=channels_last,
    )
    return loop, state, steps


def _augment(data: DataBundle) -> Callable[..., Any] | None:
    size = tuple(data.input_shape[1:])
    if data.task == "segment":
        from cnnkit.train.data.segment_augment import make_pair_augment

        return make_pair_augment(data.augment, size)
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

    for epoch in range(state.epoch, c.epochs):
        reporter.epoch_start(epoch, c.epochs, steps)
        started = time.perf_counter()
        if grad_stats is not None:
            loop.grad_norms = torch.zeros(len(params), device=device, dtype=torch.float64)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": loop.optimizer.param_groups[0]["lr"]}
        row.update(train_one_epoch(loop, data.train, epoch, reporter))
        train_seconds = time.perf_counter() - started
        if data.val is not None:
            val = evaluate(scorer, data.val, data.task, c.eval_batch_size, world, loop.autocast)
            row.update({f"val_{k}": v for k, v in val.items()})
        row["time_s"] = time.perf_counter() - started
        row["images_per_s"] = row.pop("images") / train_seconds

        improved, stop = record(state, row, c)
        if grad_stats is not None and loop.grad_norms is not None:
            grad_stats(epoch + 1, dict(zip(params, (loop.grad_norms / steps).tolist())))
        if save is not None:
            with deferred():  # Ctrl-C here: best.pt, last.pt, metrics.csv complete, then stop
                if improved:
                    save("best", {"model": module.state_dict(), "epoch": state.epoch})
                save("last", checkpoint(loop, state))
        reporter.epoch_end(row)
        if stop:
            break
    return state


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
