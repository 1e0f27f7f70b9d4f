"""Point targets (``data.target_kind: points``): (x, y) pixel coordinates that move with the image.

A target row is ``[x0, y0, x1, y1, ...]`` in the image's pixel frame: origin at the top-left
pixel's centre, x the column, y the row, so pixel (row r, column c) is at (c, r) and an image
W wide spans x in [-0.5, W - 0.5]. Under that (pixel-centre) convention a left-right flip maps
x to W - 1 - x, a crop at (top, left) subtracts (left, top), zero padding by p adds p, and a
resize from W to W' maps x to (x + 0.5) W'/W - 0.5 (the ``align_corners=False`` rule that
``F.interpolate`` and ``F.grid_sample`` sample by).

Augmentations draw exactly the random numbers ``augment.py``'s do, in the same order, so an
image is augmented the same whether its targets are points or not. A point that leaves the
crop is kept where it falls (outside ``[-0.5, W - 0.5]``), not clipped or dropped: the model is
asked for the true place even when it is off the picture. A flip does not swap left/right
paired keypoints (a left eye stays point 0): that needs a pairing cnnkit does not have.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import GEOMETRIC, Augment
from cnnkit.train.data import augment as single

Size = tuple[int, int]
PairFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def shifted(y: torch.Tensor, dx: Any, dy: Any) -> torch.Tensor:
    """Points moved by (dx, dy): scalars, or one value per image ``[B]``."""
    out = y.clone()
    out[:, 0::2] += torch.as_tensor(dx, dtype=y.dtype, device=y.device).reshape(-1, 1)
    out[:, 1::2] += torch.as_tensor(dy, dtype=y.dtype, device=y.device).reshape(-1, 1)
    return out


def resized(y: torch.Tensor, before: Size, after: Size) -> torch.Tensor:
    """Points of an image resized from ``before`` (H, W) to ``after``, pixel centres kept."""
    out = y.clone()
    out[:, 0::2] = (y[:, 0::2] + 0.5) * (after[1] / before[1]) - 0.5
    out[:, 1::2] = (y[:, 1::2] + 0.5) * (after[0] / before[0]) - 0.5
    return out


def centre_cropped(y: torch.Tensor, before: Size, after: Size) -> torch.Tensor:
    """Points of an image centre-cropped from ``before`` to ``after`` (the eval crop's offsets)."""
    top, left = (before[0] - after[0]) // 2, (before[1] - after[1]) // 2
    return shifted(y, -left, -top)


def _flip(x, y, args: Mapping[str, Any], g: torch.Generator):
    flip = torch.rand(x.shape[0], generator=g, device=x.device) < float(args.get("p", 0.5))
    mirrored = y.clone()
    mirrored[:, 0::2] = (x.shape[3] - 1) - y[:, 0::2]
    return torch.where(flip[:, None, None, None], x.flip(-1), x), torch.where(
        flip[:, None], mirrored, y
    )


def _crop(x, y, args: Mapping[str, Any], size: Size, g: torch.Generator):
    x, top, left, p = single.crop_draws(x, args, size, g)
    return single._crop_at(x, top, left, size), shifted(y, p - left, p - top)


def _resized_crop(x, y, args: Mapping[str, Any], size: Size, g: torch.Generator):
    """``augment.random_resized_crop``'s draws and grid; each point mapped through the inverse
    of the grid's affine map (normalised coordinates, ``align_corners=False``)."""
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
    image = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = y.clone()
    axes = ((0, x.shape[3], size[1], w, cx), (1, x.shape[2], size[0], h, cy))
    for column, full, new, scale, centre in axes:
        norm = (2 * y[:, column::2] + 1) / full - 1  # the input point in [-1, 1]
        out_norm = (norm - centre.to(y.dtype)[:, None]) / scale.to(y.dtype)[:, None]
        out[:, column::2] = ((out_norm + 1) * new - 1) / 2
    return image, out


def _step(kind: str, args: Mapping[str, Any], size: Size) -> PairFn:
    if kind == "hflip":
        return lambda x, y, g: _flip(x, y, args, g)
    if kind == "random_crop":
        return lambda x, y, g: _crop(x, y, args, size, g)
    if kind == "alexnet_crop":
        return lambda x, y, g: _flip(*_crop(x, y, {"padding": 0}, size, g), {"p": 0.5}, g)
    if kind == "random_resized_crop":
        return lambda x, y, g: _resized_crop(x, y, args, size, g)
    if kind in GEOMETRIC:
        raise ValueError(f"{kind} moves pixels but has no point rule")
    fn = single.AUGMENTS[kind]  # photometric: the image only
    return lambda x, y, g: (fn(x, args, size, g), y)


def make_points_augment(augments: Sequence[Augment], size: Size) -> PairFn | None:
    """Compose the recipe's augmentations for (images, points); ``None`` when there are none."""
    if not augments:
        return None
    steps = [_step(a.kind, a.args, size) for a in augments]

    def apply(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
        for step in steps:
            x, y = step(x, y, g)
        if tuple(x.shape[2:]) != size:  # e.g. only a flip on larger stored images
            before = (x.shape[2], x.shape[3])
            y = centre_cropped(y, before, size)
            top, left = (before[0] - size[0]) // 2, (before[1] - size[1]) // 2
            x = x[:, :, top : top + size[0], left : left + size[1]]
        return x.contiguous(), y

    return apply
