"""Mixup and cutmix as timm's ``Mixup`` does them (``mode="batch"``), with soft targets.

Each batch is mixed with itself reversed (``x.flip(0)``), one lambda per batch: with
probability ``train.mix_prob`` the batch is mixed, by cutmix with probability
``train.mix_switch_prob`` when both are on; lambda ~ Beta(alpha, alpha). Cutmix pastes one box
(timm's ``rand_bbox``: sides ``int(side * sqrt(1 - lambda))``, centred anywhere, clipped to
the image) and corrects lambda to the pasted area (timm's ``correct_lam``). Targets are
``lambda * smooth(y) + (1 - lambda) * smooth(y reversed)``, label smoothing ``s`` giving
``s / K`` off and ``1 - s + s / K`` on: timm's ``mixup_target``. The draws of epoch ``e`` on
rank ``r`` come from a generator seeded with ``(train.seed, e, r)``, so a resumed run mixes
exactly as an uninterrupted one; the order of the draws is timm's, which is what lets
``tests/oracle/test_mixup.py`` replay them through timm itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import InputError
from cnnkit.train.config import TrainConfig

_STREAM = 0x6D6978  # "mix": keeps these draws apart from any other use of (seed, epoch, rank)


@dataclass(frozen=True)
class MixDraw:
    """One batch's mix: lambda (the share of each image's own pixels and label) and, for
    cutmix, the pasted box ``(top, bottom, left, right)`` (bottom/right exclusive)."""

    lam: float
    box: tuple[int, int, int, int] | None = None


def mixing_on(c: TrainConfig) -> bool:
    return c.mixup > 0 or c.cutmix > 0


def draw(c: TrainConfig, rng: Any, height: int, width: int) -> MixDraw:
    """timm's ``_params_per_batch`` then ``cutmix_bbox_and_lam``, in timm's order of draws
    (``rand`` for the mix, ``rand`` for the switch when both are on, ``beta``, then ``randint``
    for the box centre's row and column)."""
    if not rng.random() < c.mix_prob:
        return MixDraw(1.0)
    if c.mixup > 0 and c.cutmix > 0:
        cut = bool(rng.random() < c.mix_switch_prob)
        alpha = c.cutmix if cut else c.mixup
    else:
        cut, alpha = c.mixup == 0, c.mixup or c.cutmix
    lam = float(rng.beta(alpha, alpha))
    if lam == 1.0 or not cut:
        return MixDraw(lam)
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = _clip(cy - cut_h // 2, height), _clip(cy + (cut_h + 1) // 2, height)
    left, right = _clip(cx - cut_w // 2, width), _clip(cx + (cut_w + 1) // 2, width)
    lam = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return MixDraw(lam, (top, bottom, left, right))


def _clip(value: int, side: int) -> int:
    return min(max(value, 0), side)


def mix(
    x: torch.Tensor, y: torch.Tensor, d: MixDraw, classes: int, smoothing: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The mixed batch, its soft targets ``[B, classes]``, and the label that holds the
    larger share of each mixed image (what train accuracy is counted against)."""
    if d.box is not None:
        top, bottom, left, right = d.box
        x = x.clone()
        x[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
    elif d.lam != 1.0:
        x = x.mul(d.lam).add_(x.flip(0).mul(1.0 - d.lam))
    off = smoothing / classes
    on = 1.0 - smoothing + off
    ones = torch.full((len(y), classes), off, device=y.device)
    target = ones.scatter(1, y.view(-1, 1), on)
    target = target * d.lam + target.flip(0) * (1.0 - d.lam)
    dominant = y if d.lam >= 0.5 else y.flip(0)
    return x, target, dominant


class Mixer:
    """One epoch's mixing on one rank: ``mixer(x, y)`` per batch, draws replayed on resume."""

    def __init__(self, c: TrainConfig, classes: int, epoch: int, rank: int) -> None:
        self.c, self.classes = c, classes
        self.rng = np.random.default_rng([c.seed, epoch, rank, _STREAM])
        # Past train.mix_epochs the targets stay soft and smoothed, unmixed (timm's
        # mixup_enabled = False at mixup_off_epoch): nothing is drawn.
        self.enabled = c.mix_epochs is None or epoch < c.mix_epochs

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = draw(self.c, self.rng, x.shape[-2], x.shape[-1]) if self.enabled else MixDraw(1.0)
        return mix(x, y, d, self.classes, self.c.label_smoothing)


def check_mixing(c: TrainConfig, input_shape: tuple[int, ...], integer_inputs: bool) -> None:
    """Mixing blends pixels: token ids cannot be blended, and cutmix cuts a 2-D box."""
    if not mixing_on(c):
        return
    key = "train.mixup" if c.mixup > 0 else "train.cutmix"
    if integer_inputs:
        raise InputError(f"{key}: mixes images, but this data gives token ids (text)")
    if c.cutmix > 0 and len(input_shape) != 3:
        raise InputError(
            f"train.cutmix: cuts a box out of [C, H, W] images, the input is {list(input_shape)}"
        )


def soft_cross_entropy(
    out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy against soft targets, the mean over images (timm's
    ``SoftTargetCrossEntropy``; with class weights, torch's weighting of probability targets:
    ``-sum_c w_c t_c log p_c``, still divided by the image count)."""
    return F.cross_entropy(out.float(), target, weight=weight)
