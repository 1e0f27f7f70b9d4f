"""Training augmentations for image/mask pairs: what moves pixels moves the mask with them.

Geometric kinds (``GEOMETRIC``) draw one set of random numbers per batch and apply it to both:
flips mirror both, crops cut both at the same place (padding the mask with ``IGNORE``, so
padded pixels are not scored), ``random_resized_crop`` samples the image bilinearly and the
mask by nearest neighbour on the same grid. Any other (photometric) kind touches the image only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import GEOMETRIC, Augment
from cnnkit.train.data import augment as single
from cnnkit.train.data.segment import IGNORE

Size = tuple[int, int]
PairFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _with_mask(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mask as one more channel (float holds every int64 class index exactly to 2**24)."""
    return torch.cat([x, y[:, None].to(x.dtype)], dim=1)


def _split(xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return xy[:, :-1], xy[:, -1].round().long()


def _pair_crop(x, y, args: Mapping[str, Any], size: Size, g: torch.Generator, flip: bool):
    p = int(args.get("padding", 0))
    if p:
        x = F.pad(x, (p, p, p, p))
        y = F.pad(y, (p, p, p, p), value=IGNORE)
    xy = single.random_crop(_with_mask(x, y), {"padding": 0}, size, g)
    if flip:
        xy = single.hflip(xy, {"p": 0.5}, size, g)
    return _split(xy)


def _pair_resized_crop(x, y, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """Inception-style crop as ``augment.random_resized_crop`` draws it, one grid for both:
    the image sampled bilinearly, the mask by nearest neighbour."""
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
    grid = F.affine_grid(theta.to(x.dtype), [n, 1, *size], align_corners=False)
    image = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mask = F.grid_sample(
        y[:, None].to(x.dtype), grid, mode="nearest", padding_mode="reflection", align_corners=False
    )
    return image, mask[:, 0].round().long()


def _step(kind: str, args: Mapping[str, Any], size: Size) -> PairFn:
    if kind == "hflip":
        return lambda x, y, g: _split(single.hflip(_with_mask(x, y), args, size, g))
    if kind == "random_crop":
        return lambda x, y, g: _pair_crop(x, y, args, size, g, flip=False)
    if kind == "alexnet_crop":
        return lambda x, y, g: _pair_crop(x, y, {"padding": 0}, size, g, flip=True)
    if kind == "random_resized_crop":
        return lambda x, y, g: _pair_resized_crop(x, y, args, size, g)
    if kind in GEOMETRIC:  # parse_data refuses these for task segment
        raise ValueError(f"{kind} moves pixels but has no mask rule")
    fn = single.AUGMENTS[kind]  # photometric: the image only
    return lambda x, y, g: (fn(x, args, size, g), y)


def make_pair_augment(augments: Sequence[Augment], size: Size) -> PairFn | None:
    """Compose the recipe's augmentations for (images, masks); ``None`` when there are none."""
    if not augments:
        return None
    steps = [_step(a.kind, a.args, size) for a in augments]

    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        for step in steps:
            x, y = step(x, y, g)
        if tuple(x.shape[2:]) != size:  # e.g. only a flip on larger stored images
            top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
            x = x[:, :, top : top + size[0], left : left + size[1]]
            y = y[:, top : top + size[0], left : left + size[1]]
        return x.contiguous(), y.contiguous()

    return apply
