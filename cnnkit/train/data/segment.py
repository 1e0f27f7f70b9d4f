"""Segmentation data (``data.task: segment``): image/mask pairs from files, or ``shapes``.

Masks are class-index images (PNG modes L, P, I, 1: the pixel value is the class). Every pair
is checked before training, one line per bad pair: a missing mask, a mask whose size is not its
image's, an index past ``data.classes`` that is not ``data.ignore_index``. Images are resized
bilinearly to the stored size, masks by nearest neighbour (a class index has no in-between).
Inside cnnkit ignored pixels hold ``IGNORE`` (-100), torch's own ignore value for
``F.cross_entropy``, so the loss and every metric skip them with no extra argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.config import DataConfig
from cnnkit.train.data import checks, sources
from cnnkit.train.data.sources import Raw, Want

IGNORE = -100  # F.cross_entropy's default ignore_index
SHAPE_NAMES = ("background", "circle", "square", "triangle")
MASK_MODES = {"L", "P", "I", "I;16", "I;16B", "I;16L", "1"}
MAX_LISTED = 20  # bad pairs named one per line; the rest are counted


def class_names(config: DataConfig) -> tuple[str, ...]:
    if config.name == "shapes":
        return SHAPE_NAMES[: config.classes]
    return tuple(str(i) for i in range(config.classes))


def read_segment(config: DataConfig, path: str | None, want: Want) -> Raw:
    """The source's images ``[N, C, H, W]`` and masks ``[N, H, W]`` (int64) at ``want.size``."""
    if config.name == "shapes":
        return shapes(config.samples, want, config.classes, config.seed)
    root = sources._existing(str(path))
    pairs = _csv_pairs(root) if config.name == "csv" else _folder_pairs(root)
    masks, bad = [], []
    for image, mask in pairs:
        try:
            masks.append(_read_mask(image, mask, config, want))
        except DataError as err:
            bad.append(str(err))
    if bad:
        raise _bad_pairs(bad, str(root), len(pairs))
    x = sources._images([image for image, _ in pairs], want)
    return Raw(x, torch.stack(masks), class_names(config))


def _bad_pairs(bad: list[str], where: str, total: int) -> DataError:
    """One error for every bad pair: its line names the first, ``details`` holds one line per
    bad pair (the CLI prints them under the error line)."""
    err = DataError(
        f"{len(bad)} of {total} image/mask pairs are bad (each listed below); first: {bad[0]}",
        where=where,
    )
    more = [f"... and {len(bad) - MAX_LISTED} more"] if len(bad) > MAX_LISTED else []
    err.details = tuple(bad[:MAX_LISTED] + more)  # type: ignore[attr-defined]
    return err


def _folder_pairs(root: Path) -> list[tuple[Path, Path | None]]:
    """``images/`` and ``masks/`` with matching stems (``masks/NAME.png`` for ``images/NAME.*``)."""
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DataError("task segment expects a folder with images/ and masks/", where=str(root))
    by_stem = {f.stem: f for f in sorted(masks.iterdir()) if f.is_file()}
    files = sorted(
        f for f in images.iterdir() if f.suffix.lower() in sources.IMAGE_SUFFIXES and f.is_file()
    )
    if not files:
        raise DataError("no images found", where=str(images))
    return [(f, by_stem.get(f.stem)) for f in files]


def _csv_pairs(file: Path) -> list[tuple[Path, Path | None]]:
    """A table with ``image`` and ``mask`` columns of paths relative to the table's folder."""
    import pandas as pd

    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read CSV: {sources._one_line(err)}", where=str(file)) from None
    for column in ("image", "mask"):
        if column not in table.columns:
            raise DataError(
                f"column {column!r} is absent: task segment reads an image,mask table",
                where=str(file),
            )
    if table.empty:
        raise DataError("the table has a header but no data rows", where=str(file))
    return [
        (file.parent / image, file.parent / mask if mask else None)
        for image, mask in zip(table["image"], table["mask"])
    ]


def _image_size(image: Path) -> tuple[int, int]:
    """The image's (width, height) from its header, so a pair is checked before decoding."""
    from PIL import Image

    if not image.is_file():
        raise DataError("no such image file", where=str(image))
    try:
        with Image.open(image) as img:
            return img.size
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read image: {sources._one_line(err)}", where=str(image)) from None


def _read_mask(image: Path, mask: Path | None, config: DataConfig, want: Want) -> torch.Tensor:
    """One mask as int64 ``[H, W]`` at ``want.size`` (nearest), ignored pixels as ``IGNORE``."""
    from PIL import Image

    size = _image_size(image)
    if mask is None or not mask.is_file():
        raise DataError("no mask", where=str(mask or image))
    try:
        with Image.open(mask) as m:
            checks.check_image_size(*m.size, str(mask))
            if m.size != size:
                raise DataError(
                    f"mask is {m.size[0]}x{m.size[1]} but its image {image.name} is "
                    f"{size[0]}x{size[1]} (width x height)",
                    where=str(mask),
                )
            if m.mode not in MASK_MODES:
                raise DataError(
                    f"a mask must be a one-channel class-index image (L, P or I), got {m.mode}",
                    where=str(mask),
                )
            values = np.asarray(m.resize((want.size[1], want.size[0]), Image.Resampling.NEAREST))
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read mask: {sources._one_line(err)}", where=str(mask)) from None
    values = values.astype(np.int64)
    out_of_range = (values >= config.classes) & (values != config.ignore_index)
    if out_of_range.any():
        raise DataError(
            f"class index {int(values[out_of_range].max())} is not below data.classes "
            f"{config.classes} nor data.ignore_index {config.ignore_index}",
            where=str(mask),
        )
    values[values == config.ignore_index] = IGNORE
    return torch.from_numpy(values)


def shapes(samples: int, want: Want, classes: int, seed: int) -> Raw:
    """``samples`` seeded images of one to three filled shapes (circle, square, triangle: the
    first ``classes - 1``) in random bright colours on a dark noisy background, with masks."""
    rng = np.random.default_rng(seed)
    h, w = want.size
    sources._check_synthetic_fits(samples, 0, want.channels * h * w + h * w)
    x = np.empty((samples, want.channels, h, w), dtype=np.float32)
    y = np.zeros((samples, h, w), dtype=np.int64)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(samples):
        x[i] = rng.uniform(0.0, 0.3, (want.channels, 1, 1)) + rng.normal(
            0, 0.05, (want.channels, h, w)
        )
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(1, classes))
            inside = _shape(kind, rows, cols, rng, min(h, w))
            x[i][:, inside] = rng.uniform(0.5, 1.0, (want.channels, 1))
            y[i][inside] = kind
    x = np.clip(x, 0.0, 1.0)
    return Raw(torch.from_numpy(x), torch.from_numpy(y), SHAPE_NAMES[:classes])


def _shape(kind: int, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, side: int):
    """The pixels inside one shape of class ``kind`` at a random place and size."""
    r = rng.uniform(0.12, 0.25) * side
    cy, cx = rng.uniform(r, rows.shape[0] - r), rng.uniform(r, cols.shape[1] - r)
    dy, dx = rows - cy, cols - cx
    if kind == 1:
        return dy**2 + dx**2 <= r**2
    if kind == 2:
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)  # apex up
