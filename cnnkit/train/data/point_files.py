"""Point targets of image files (a csv of paths with ``data.target_kind: points``).

A table's points are in its file's pixel frame (``cnnkit.train.data.points``' convention), and
each file is resized to the stored size as it is decoded: its points are scaled by that file's
own size, in memory and streaming alike. Streamed train images augmented per sample
(``data.sample_augment``) move their points in ``augment_points``, which draws exactly what
``transforms.augment_image`` draws, in the same order, so the pixels are the ones a
``values`` target would get.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.data.sources import Raw, Want, _one_line

Size = tuple[int, int]


def file_size(file: str) -> Size:
    """(H, W) from the file's header; no pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return image.height, image.width
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataError(f"cannot read image: {_one_line(err)}", where=file) from None


def scaled(y: torch.Tensor, before: torch.Tensor, after: Size) -> torch.Tensor:
    """Rows of points scaled from per-row sizes ``before`` ``[N, 2]`` (H, W) to ``after``:
    x -> (x + 0.5) W'/W - 0.5, in float64 so the map and its inverse round once."""
    out = y.double().clone()
    before = before.double()
    out[:, 0::2] = (out[:, 0::2] + 0.5) * (after[1] / before[:, 1:2]) - 0.5
    out[:, 1::2] = (out[:, 1::2] + 0.5) * (after[0] / before[:, 0:1]) - 0.5
    return out.to(y.dtype)


def to_stored(y: torch.Tensor, files: Sequence[Any], size: Size, where: str) -> torch.Tensor:
    """A table's points (checked: pairs of numbers) moved from each file's frame to the
    stored size ``size`` that the file is resized to."""
    from cnnkit.train.data.pipeline import _checked_points

    y = _checked_points(y, where)
    sizes = torch.tensor([file_size(str(f)) for f in files], dtype=torch.float64)
    if not len(sizes) or bool((sizes == torch.tensor(size, dtype=torch.float64)).all()):
        return y
    return scaled(y, sizes.reshape(-1, 2), size)


def stored_points(raw: Raw, files: Sequence[str], want: Want, where: str) -> Raw:
    """``to_stored`` for a streamed listing, whose ``x`` indexes ``files`` (given splits too)."""

    def one(r: Raw) -> Raw:
        chosen = [files[i] for i in r.x.tolist()]
        return Raw(r.x, to_stored(r.y, chosen, want.size, where), r.classes, r.given)

    out = one(raw)
    out.given = {name: one(given) for name, given in raw.given.items()}
    return out


def _flipped(y: torch.Tensor, width: int) -> torch.Tensor:
    out = y.clone()
    out[0::2] = (width - 1) - y[0::2]
    return out


def _box_points(y: torch.Tensor, box: tuple[int, int, int, int], size: Size) -> torch.Tensor:
    """Points of a crop at (top, left) of (h, w), resized to ``size``."""
    top, left, h, w = box
    out = y.clone()
    out[0::2] = (y[0::2] - left + 0.5) * (size[1] / w) - 0.5
    out[1::2] = (y[1::2] - top + 0.5) * (size[0] / h) - 0.5
    return out


def augment_points(
    image: Any, y: torch.Tensor, steps: Sequence[tuple[str, Mapping[str, Any]]], size: Size, g: Any
) -> tuple[Any, torch.Tensor]:
    """``transforms.augment_image`` on one PIL image with its points ``[2K]`` (float64, the
    file's frame): the same draws and pixels, each crop, resize and flip applied to the
    points too. Both come out at ``size``."""
    from PIL import Image

    from cnnkit.train.data.transforms import colour_jitter, resized_crop_box

    for kind, args in steps:
        if kind == "random_resized_crop":
            box = resized_crop_box(image.height, image.width, args["scale"], args["ratio"], g)
            top, left, h, w = box
            image = image.crop((left, top, left + w, top + h))
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            y = _box_points(y, box, size)
        elif kind == "hflip":
            if torch.rand(1, generator=g) < float(args["p"]):
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                y = _flipped(y, image.width)
        elif kind == "colour_jitter":
            image = colour_jitter(image, args, g)
    if (image.height, image.width) != size:
        y = _box_points(y, (0, 0, image.height, image.width), size)
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return image, y


def decode_points(
    file: str, want: Want, y: torch.Tensor, steps: Sequence[Any], g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One streamed train image (uint8 ``[C, H, W]``) augmented by ``steps`` with its points:
    ``y`` in the stored frame (as listed) goes back to the file's frame, moves with the
    image, and comes out in the stored frame again."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked up front
            with Image.open(file) as image:
                image = image.convert("L" if want.channels == 1 else "RGB")
                back = (y.double() + 0.5) / torch.tensor(want.size[::-1]).double().repeat(
                    len(y) // 2
                )
                frame = torch.tensor([image.width, image.height]).double().repeat(len(y) // 2)
                image, moved = augment_points(image, back * frame - 0.5, steps, want.size, g)
                array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataError(f"cannot read image: {_one_line(err)}", where=file) from None
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.transpose(2, 0, 1).copy()), moved.to(y.dtype)
