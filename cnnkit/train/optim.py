"""Optimisers and learning-rate schedules, each one row of a table keyed by its recipe name.

Schedules are pure functions of the global step (a multiplier of ``train.lr``) wrapped in one
``LambdaLR``: its state is a single counter, so checkpoints stay ``weights_only``-loadable and
a resumed run continues the curve exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from cnnkit.train.config import TrainConfig

OptimizerFactory = Callable[[Iterable[Any], TrainConfig], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, c: torch.optim.SGD(
        params,
        lr=c.lr,
        momentum=c.momentum,
        nesterov=c.nesterov and c.momentum > 0,
        weight_decay=c.weight_decay,
    ),
    "adam": lambda params, c: torch.optim.Adam(
        params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay
    ),
    "adamw": lambda params, c: torch.optim.AdamW(
        params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay
    ),
}


def _constant(t: float, step: int, steps_per_epoch: int, c: TrainConfig) -> float:
    return 1.0


def _step(t: float, step: int, steps_per_epoch: int, c: TrainConfig) -> float:
    return c.gamma ** ((step // steps_per_epoch) // c.step_size)


def _cosine(t: float, step: int, steps_per_epoch: int, c: TrainConfig) -> float:
    """Loshchilov & Hutter 2017 (SGDR), one cycle without restarts, down to ``min_lr``."""
    floor = c.min_lr / c.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def _onecycle(t: float, step: int, steps_per_epoch: int, c: TrainConfig) -> float:
    """Smith & Topin 2018, learning-rate half (momentum is not cycled): from lr/25 up to lr over
    the first 30%, then cosine down to ``min_lr`` (or lr/25e4, PyTorch's OneCycleLR default)."""
    start, floor, peak = 1 / 25, (c.min_lr / c.lr) or 1 / 25e4, 0.3
    if t < peak:
        return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t / peak))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (t - peak) / (1 - peak)))


Schedule = Callable[[float, int, int, TrainConfig], float]
SCHEDULES: dict[str, Schedule] = {
    "constant": _constant,
    "step": _step,
    "cosine": _cosine,
    "onecycle": _onecycle,
}


def lr_multiplier(step: int, steps_per_epoch: int, c: TrainConfig) -> float:
    """``train.lr`` times this is the learning rate of ``step`` (0-based, one per batch).

    Linear warm-up (Goyal et al. 2017) multiplies the first ``warmup_epochs``; the schedule's
    progress ``t`` runs from 0 to 1 over the steps after warm-up.
    """
    total = max(1, c.epochs * steps_per_epoch)
    warm = int(round(c.warmup_epochs * steps_per_epoch))
    t = min(1.0, max(0.0, (step - warm) / max(1, total - warm)))
    factor = SCHEDULES[c.scheduler](t, step, steps_per_epoch, c)
    if step < warm:
        factor *= (step + 1) / warm
    return factor


def make_optimizer(model: torch.nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer`` over the parameter groups of ``cnnkit.train.param_groups`` (biases
    and norm weights undecayed unless ``train.weight_decay_norm_bias``)."""
    from cnnkit.train.param_groups import param_groups

    groups = param_groups(model, c.weight_decay, c.weight_decay_norm_bias)
    return OPTIMIZERS[c.optimizer](groups, c)


def make_scheduler(
    optimizer: torch.optim.Optimizer, c: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_multiplier(step, steps_per_epoch, c)
    )
