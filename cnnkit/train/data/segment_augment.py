"""Training augmentations for image/mask pairs: what moves pixels moves the mask with them.

Geometric kinds (``GEOMETRIC``) draw one set of random numbers per batch and apply it to both:
flips mirror both, crops cut both at the same place (padding the mask with ``IGNORE``, so
padded pixels are not scored), ``random_resized_crop`` samples the image bilinearly and the
mask by nearest neighbour on the same grid. Any other (photometric) kind touches the image only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.config import Augment
from cnnkit.train.data import augment as single
from cnnkit.train.data.pair_augment import PairFn, PairRule, resized_crop_grid
from cnnkit.train.data.pair_augment import make_pair_augment as compose
from cnnkit.train.data.segment import IGNORE

Size = tuple[int, int]


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
    grid, _ = resized_crop_grid(x, args, size, g)
    image = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mask = F.grid_sample(
        y[:, None].to(x.dtype), grid, mode="nearest", padding_mode="reflection", align_corners=False
    )
    return image, mask[:, 0].round().long()


def _centre_crop(y: torch.Tensor, before: Size, size: Size) -> torch.Tensor:
    top, left = (before[0] - size[0]) // 2, (before[1] - size[1]) // 2
    return y[:, top : top + size[0], left : left + size[1]]


# parse_data refuses the geometric kinds this rule lacks for task segment.
RULE = PairRule(
    target="mask",
    hflip=lambda x, y, args, g: _split(single.hflip(_with_mask(x, y), args, (0, 0), g)),  # no size
    random_crop=lambda x, y, args, size, g: _pair_crop(x, y, args, size, g, flip=False),
    alexnet_crop=lambda x, y, size, g: _pair_crop(x, y, {"padding": 0}, size, g, flip=True),
    random_resized_crop=_pair_resized_crop,
    centre_crop=_centre_crop,
)


def make_pair_augment(augments: Sequence[Augment], size: Size) -> PairFn | None:
    """Compose the recipe's augmentations for (images, masks); ``None`` when there are none."""
    return compose(augments, size, RULE)
