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

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import Augment
from cnnkit.train.data import augment as single
from cnnkit.train.data.pair_augment import PairFn, PairRule, make_pair_augment, resized_crop_grid

Size = tuple[int, int]


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
    grid, (w, h, cx, cy) = resized_crop_grid(x, args, size, g)
    image = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = y.clone()
    axes = ((0, x.shape[3], size[1], w, cx), (1, x.shape[2], size[0], h, cy))
    for column, full, new, scale, centre in axes:
        norm = (2 * y[:, column::2] + 1) / full - 1  # the input point in [-1, 1]
        out_norm = (norm - centre.to(y.dtype)[:, None]) / scale.to(y.dtype)[:, None]
        out[:, column::2] = ((out_norm + 1) * new - 1) / 2
    return image, out


RULE = PairRule(
    target="point",
    hflip=_flip,
    random_crop=_crop,
    alexnet_crop=lambda x, y, size, g: _flip(*_crop(x, y, {"padding": 0}, size, g), {"p": 0.5}, g),
    random_resized_crop=_resized_crop,
    centre_crop=centre_cropped,
)


def make_points_augment(augments: Sequence[Augment], size: Size) -> PairFn | None:
    """Compose the recipe's augmentations for (images, points); ``None`` when there are none."""
    return make_pair_augment(augments, size, RULE)
