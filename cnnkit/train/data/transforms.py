"""Per-sample training augmentation in the streaming workers (``data.sample_augment``).

Each image is augmented alone, on its decoded PIL image at its own size, before it becomes a
tensor: torchvision's algorithms, drawn in torchvision's order from a generator seeded by
(data.seed, epoch, the image's index in the split), so an image gets the same crop, flip and
colours whatever the worker count, the rank, or a resume. ``tests/oracle`` checks every draw
and every output pixel against torchvision's ``RandomResizedCrop``, ``RandomHorizontalFlip``
and ``ColorJitter`` (PIL path) fed the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

Box = tuple[int, int, int, int]  # top, left, height, width


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The generator seed of one image in one epoch: a pure function, nothing to save."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + index) % 2**63


def resized_crop_box(
    height: int, width: int, scale: Sequence[float], ratio: Sequence[float], g: torch.Generator
) -> Box:
    """``RandomResizedCrop.get_params``: up to 10 tries of a random area fraction and log-
    uniform aspect ratio that fit the image, else the centre crop of the nearest aspect."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(scale[0], scale[1], generator=g).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=g)).item()
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=g).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=g).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _jitter_range(value: float) -> tuple[float, float] | None:
    """ColorJitter's ``_check_input`` for one factor: 1 +- value, floored at 0; 0 is off."""
    return None if value == 0 else (max(0.0, 1 - value), 1 + value)


def colour_jitter(image: Any, args: Mapping[str, Any], g: torch.Generator) -> Any:
    """``ColorJitter(brightness, contrast, saturation)``: the four operations in a random
    order (hue is drawn in the order but never set), each factor uniform in 1 +- value."""
    from PIL import ImageEnhance

    order = torch.randperm(4, generator=g).tolist()
    factors = {}
    for i, name in enumerate(("brightness", "contrast", "saturation")):
        span = _jitter_range(float(args.get(name, 0.0)))
        if span is not None:
            factors[i] = float(torch.empty(1).uniform_(span[0], span[1], generator=g))
    enhance = {0: ImageEnhance.Brightness, 1: ImageEnhance.Contrast, 2: ImageEnhance.Color}
    for i in order:
        if i in factors:
            image = enhance[i](image).enhance(factors[i])
    return image


def augment_image(
    image: Any, steps: Sequence[tuple[str, Mapping[str, Any]]], size: tuple[int, int], g: Any
) -> Any:
    """``steps`` in order on one PIL image; the result is ``size`` (H, W): cropped and resized
    by ``random_resized_crop``, else resized bilinearly at the end as without augmentation."""
    from PIL import Image

    for kind, args in steps:
        if kind == "random_resized_crop":
            top, left, h, w = resized_crop_box(
                image.height, image.width, args["scale"], args["ratio"], g
            )
            image = image.crop((left, top, left + w, top + h))
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        elif kind == "hflip":
            if torch.rand(1, generator=g) < float(args["p"]):
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif kind == "colour_jitter":
            image = colour_jitter(image, args, g)
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return image


def augment_pair(
    image: Any,
    mask: Any,
    steps: Sequence[tuple[str, Mapping[str, Any]]],
    size: tuple[int, int],
    g: torch.Generator,
) -> tuple[Any, Any]:
    """``augment_image`` for an image and its mask: one set of draws, the same geometry for
    both (the mask resized by nearest neighbour: a class index has no in-between), the
    colours for the image only. Both come out at ``size``."""
    from PIL import Image

    for kind, args in steps:
        if kind == "random_resized_crop":
            top, left, h, w = resized_crop_box(
                image.height, image.width, args["scale"], args["ratio"], g
            )
            box = (left, top, left + w, top + h)
            image = image.crop(box).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            mask = mask.crop(box).resize((size[1], size[0]), Image.Resampling.NEAREST)
        elif kind == "hflip":
            if torch.rand(1, generator=g) < float(args["p"]):
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                mask = mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif kind == "colour_jitter":
            image = colour_jitter(image, args, g)
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        mask = mask.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return image, mask
