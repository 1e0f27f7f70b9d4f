"""Batched, on-device training augmentations, one function per kind in ``AUGMENTS``.

Each works on a whole batch ``[B, C, H, W]`` at once (no per-image Python loop) and draws its
random numbers from the epoch's generator, which lives on the batch's device: no host-to-device
copy (and so no stream sync) per batch on a GPU, and a resumed run replays the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import Augment

# Augmentations that change the spatial size: with them the train split stays at stored size.
CROPPING = {"random_crop", "random_resized_crop", "alexnet_crop"}

Size = tuple[int, int]
AugmentFn = Callable[[torch.Tensor, Mapping[str, Any], Size, torch.Generator], torch.Tensor]


def _crop_at(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: Size) -> torch.Tensor:
    """Crop image b at (top[b], left[b]) to ``size`` with one gather (advanced indexing)."""
    b = torch.arange(x.shape[0], device=x.device)[:, None, None]
    rows = (top[:, None] + torch.arange(size[0], device=x.device))[:, :, None]
    cols = (left[:, None] + torch.arange(size[1], device=x.device))[:, None, :]
    return x.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)


def crop_draws(
    x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``x`` zero-padded by ``padding`` and each image's crop corner (top, left), drawn in that
    order: the one draw that random_crop and the point-moving crop (data/points.py) share."""
    p = int(args.get("padding", 0))
    if p:
        x = F.pad(x, (p, p, p, p))
    n = x.shape[0]
    top = torch.randint(0, x.shape[2] - size[0] + 1, (n,), generator=g, device=x.device)
    left = torch.randint(0, x.shape[3] - size[1] + 1, (n,), generator=g, device=x.device)
    return x, top, left, p


def random_crop(x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """Zero-pad by ``padding`` then take a random ``size`` crop (zero is the mean after
    normalisation, so padding adds no bias)."""
    x, top, left, _ = crop_draws(x, args, size, g)
    return _crop_at(x, top, left, size)


def hflip(x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], generator=g, device=x.device) < float(args.get("p", 0.5))
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_resized_crop(x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """Inception-style crop (Szegedy et al. 2015): a random area fraction ``scale`` and aspect
    ``ratio``, resized to ``size`` with one batched ``grid_sample``."""
    n = x.shape[0]
    lo, hi = args.get("scale", (0.08, 1.0))
    r_lo, r_hi = args.get("ratio", (3 / 4, 4 / 3))
    area = lo + (hi - lo) * torch.rand(n, generator=g, device=x.device)
    log_ratio = math.log(r_lo) + (math.log(r_hi) - math.log(r_lo)) * torch.rand(
        n, generator=g, device=x.device
    )
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the full width / height
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * torch.rand(n, generator=g, device=x.device) - 1)  # centre in [-1+w, 1-w]
    cy = (1 - h) * (2 * torch.rand(n, generator=g, device=x.device) - 1)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta.to(x.dtype), [n, x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def alexnet_crop(x: torch.Tensor, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """Krizhevsky et al. 2012: a random ``size`` patch of the larger stored image, then a flip."""
    return hflip(random_crop(x, {"padding": 0}, size, g), {"p": 0.5}, size, g)


AUGMENTS: dict[str, AugmentFn] = {
    "random_crop": random_crop,
    "hflip": hflip,
    "random_resized_crop": random_resized_crop,
    "alexnet_crop": alexnet_crop,
}


def make_augment(
    augments: Sequence[Augment], size: Size
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """Compose the recipe's augmentations; ``None`` when there are none (no per-batch cost)."""
    if not augments:
        return None
    steps = [(AUGMENTS[a.kind], a.args) for a in augments]

    def apply(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for fn, args in steps:
            x = fn(x, args, size, g)
        if tuple(x.shape[2:]) != size:  # e.g. only a flip on larger stored images
            top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
            x = x[:, :, top : top + size[0], left : left + size[1]]
        return x.contiguous()

    return apply
