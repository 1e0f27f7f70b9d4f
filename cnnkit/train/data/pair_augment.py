"""One composer for augmentations of (images, targets that live in them): masks and points.

``data/segment_augment.py`` (masks) and ``data/points.py`` (points) each give a ``PairRule``,
how every geometric kind moves their target; this module runs the recipe's list with it, the
same order and random draws as ``augment.make_augment`` (photometric kinds touch the image
only), and ends with the centre crop of a larger stored image, applied to both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import GEOMETRIC, Augment
from cnnkit.train.data import augment as single

Size = tuple[int, int]
Pair = tuple[torch.Tensor, torch.Tensor]
PairFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], Pair]


@dataclass(frozen=True)
class PairRule:
    """How each geometric kind moves one kind of target (``target`` names it in messages)."""

    target: str
    hflip: Callable[[torch.Tensor, torch.Tensor, Mapping[str, Any], torch.Generator], Pair]
    random_crop: Callable[..., Pair]  # (x, y, args, size, g)
    alexnet_crop: Callable[[torch.Tensor, torch.Tensor, Size, torch.Generator], Pair]
    random_resized_crop: Callable[..., Pair]  # (x, y, args, size, g)
    centre_crop: Callable[[torch.Tensor, Size, Size], torch.Tensor]  # (y, before, size)


def resized_crop_grid(x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """``augment.random_resized_crop``'s draws and sampling grid, and the crop's fractions and
    centres (w, h, cx, cy) that a target's rule needs."""
    n, dev = x.shape[0], x.device
    lo, hi = args.get("scale", (0.08, 1.0))
    r_lo, r_hi = args.get("ratio", (3 / 4, 4 / 3))
    area = lo + (hi - lo) * torch.rand(n, generator=g, device=dev)
    log_lo, log_hi = math.log(r_lo), math.log(r_hi)
    ratio = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, generator=g, device=dev))
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, generator=g, device=dev) - 1)
    cy = (1 - h) * (2 * torch.rand(n, generator=g, device=dev) - 1)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], *size], align_corners=False)
    return grid, (w, h, cx, cy)


def _step(kind: str, args: Mapping[str, Any], size: Size, rule: PairRule) -> PairFn:
    if kind == "hflip":
        return lambda x, y, g: rule.hflip(x, y, args, g)
    if kind == "random_crop":
        return lambda x, y, g: rule.random_crop(x, y, args, size, g)
    if kind == "alexnet_crop":
        return lambda x, y, g: rule.alexnet_crop(x, y, size, g)
    if kind == "random_resized_crop":
        return lambda x, y, g: rule.random_resized_crop(x, y, args, size, g)
    if kind in GEOMETRIC:
        raise ValueError(f"{kind} moves pixels but has no {rule.target} rule")
    fn = single.AUGMENTS[kind]  # photometric: the image only
    return lambda x, y, g: (fn(x, args, size, g), y)


def make_pair_augment(augments: Sequence[Augment], size: Size, rule: PairRule) -> PairFn | None:
    """Compose the recipe's augmentations for (images, targets); ``None`` when there are none."""
    if not augments:
        return None
    steps = [_step(a.kind, a.args, size, rule) for a in augments]

    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> Pair:
        for step in steps:
            x, y = step(x, y, g)
        if tuple(x.shape[2:]) != size:  # e.g. only a flip on larger stored images
            before = (x.shape[2], x.shape[3])
            y = rule.centre_crop(y, before, size)
            top, left = (before[0] - size[0]) // 2, (before[1] - size[1]) // 2
            x = x[:, :, top : top + size[0], left : left + size[1]]
        return x.contiguous(), y.contiguous()

    return apply
