"""Checks every source's contents pass before training: values, labels and declared sizes.

A NaN pixel or target does not fail at load time by itself: training runs and stops later with
"loss became nan; lower train.lr", which points at the wrong fix. A NaN label would become a
class named "nan". A file header can claim far more data than the file holds (a 1 KB PNG that
declares 40000x40000 pixels). Each of these is one ``DataError`` naming the file, found before
any pixel is decoded or any step is trained.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.config import MAX_CLASSES, MAX_IMAGE_SIDE

# An image over 8192 x 8192 is refused before decoding: no CNN data set stores photos that
# large (they are resized to the recipe input anyway), and a tiny file can declare any size.
MAX_SIDE = MAX_IMAGE_SIDE
MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
# Integer labels name the classes 0..max: a stray 10**12 would otherwise ask for 10**12 names.
# Deflate never expands more than about 1032:1, so a .gz of S bytes cannot hold more than this.
DEFLATE_RATIO = 1032

Where = Callable[[int], str]


def index_of(i: int) -> str:
    """How a sample is named in messages for array sources (npz, idx): its 0-based index."""
    return f"index {i}"


def row_of(i: int) -> str:
    """How a sample is named for a CSV table: its data row, counted from 1 after the header."""
    return f"data row {i + 1}"


def count_true(bad: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """How many entries of a 1-D flag array are set, and the first one's position (or -1)."""
    flags = bad.numpy() if isinstance(bad, torch.Tensor) else np.asarray(bad)
    found = np.flatnonzero(flags)
    return len(found), int(found[0]) if len(found) else -1


def image_too_large(declared: str, where: str) -> DataError:
    """The error for an image over ``MAX_IMAGE_PIXELS``; ``declared`` says how large it is."""
    return DataError(
        f"image declares {declared} pixels, over the {MAX_IMAGE_PIXELS:,} ({MAX_SIDE}x{MAX_SIDE})"
        " cnnkit decodes: a decompression bomb, or a file to shrink first",
        where=where,
    )


def check_image_size(width: int, height: int, where: str) -> None:
    """Refuse an image whose header declares more than ``MAX_IMAGE_PIXELS``, before decoding."""
    if width * height > MAX_IMAGE_PIXELS:
        raise image_too_large(f"{width}x{height}", where)


def check_images(x: torch.Tensor, where: str, name: Where = index_of) -> None:
    """Images must have pixels, and every pixel must be a finite number."""
    if x.dim() == 4 and (x.shape[2] == 0 or x.shape[3] == 0):
        raise DataError(f"images are {x.shape[2]}x{x.shape[3]} pixels", where=where)
    _all_finite(x, where, name, ("image holds", "images hold"), "pixels")


def check_targets(y: torch.Tensor, where: str, name: Where = index_of) -> None:
    """Regression targets must be finite: one NaN target makes every loss NaN."""
    _all_finite(y, where, name, ("sample has", "samples have"), "targets")


def _all_finite(
    t: torch.Tensor, where: str, name: Where, nouns: tuple[str, str], what: str
) -> None:
    """One line naming how many samples hold NaN or inf values, and the first of them."""
    if not len(t):
        return
    count, first = count_true(~torch.isfinite(t.reshape(len(t), -1)).all(dim=1))
    if count:
        noun = nouns[0] if count == 1 else nouns[1]
        raise DataError(f"{count} {noun} NaN or inf {what} (first: {name(first)})", where=where)


def target_array(values: np.ndarray, where: str) -> torch.Tensor:
    """Regression targets as float32 ``[N, T]``; text or complex values are refused."""
    if values.dtype.kind not in "biuf":
        raise DataError(f"targets must be numbers, got {_kind(values)}", where=where)
    if values.ndim == 0:
        raise DataError("targets must be an array with one entry per image", where=where)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 becomes inf: checked next
        return torch.from_numpy(np.array(values, dtype=np.float32).reshape(len(values), -1))


def check_label_values(values: np.ndarray, where: str, name: Where = index_of) -> None:
    """Labels are one per image; NaN, inf and class indices past ``MAX_CLASSES`` are refused."""
    if values.ndim != 1:
        raise DataError(
            f"labels must be one per image (shape [N]), got shape {list(values.shape)}",
            where=where,
        )
    if values.dtype.kind in "cmMV":
        raise DataError(f"labels must be integers or names, got {_kind(values)}", where=where)
    if values.dtype.kind == "f":
        count, first = count_true(~np.isfinite(values))
        if count:
            raise DataError(
                f"{count} label{'s are' if count > 1 else ' is'} NaN or inf (first: {name(first)})",
                where=where,
            )
    if values.dtype.kind in "iuf" and values.size and values.max() >= MAX_CLASSES:
        at = int(np.argmax(values))
        raise DataError(
            f"label {values[at]:g} at {name(at)} is not a class index below {MAX_CLASSES:,}",
            where=where,
        )


def check_pixel_dtype(x: np.ndarray, where: str) -> None:
    """Pixels must be real numbers (bool counts as 0/1); text or complex values are refused."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"images must hold numbers, got {_kind(x)}", where=where)


def _kind(values: np.ndarray) -> str:
    names = {"c": "complex", "U": "text", "S": "bytes", "O": "text or objects", "V": "records"}
    return f"{names.get(values.dtype.kind, 'values')} ({values.dtype})"
