"""Readers for every data source, one function each, looked up in ``SOURCES`` by name.

A reader returns ``Raw``: images as float32 ``[N, C, H, W]`` scaled to [0, 1] (any size; the
pipeline fits them to the recipe), targets, class names, and any splits the source itself
defines (MNIST's train/t10k files). Every problem is a ``DataError`` naming the file.
"""

from __future__ import annotations

import gzip
import lzma
import math
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from cnnkit.errors import DataError, MissingDependencyError
from cnnkit.train.config import DataConfig
from cnnkit.train.data import checks

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm"}


@dataclass
class Raw:
    """One source's contents before splitting; ``given`` holds splits the source defines."""

    x: torch.Tensor  # float32 [N, C, H, W] in [0, 1]
    y: torch.Tensor  # int64 [N] labels, or float32 [N, T] regression targets
    classes: tuple[str, ...] = ()
    given: dict[str, Raw] = field(default_factory=dict)


@dataclass(frozen=True)
class Want:
    """What the recipe needs: channels, and the size images are stored at."""

    channels: int
    size: tuple[int, int]


def _labels(
    values: np.ndarray, where: str, name: checks.Where = checks.index_of
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Integer labels as they are; anything else mapped to sorted class names. NaN, inf and
    huge class indices are refused first: they would become a class "nan" or 10**12 names."""
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    checks.check_label_values(values, where, name)
    if values.dtype.kind in "iu" or (values.dtype.kind == "f" and np.all(values == values // 1)):
        if values.size and values.min() < 0:
            raise DataError(
                f"labels must be non-negative integers, found {values.min():g}", where=where
            )
        labels = values.astype(np.int64)
        names = tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0))
        return torch.from_numpy(labels), names
    names = tuple(sorted({str(v) for v in values}))
    index = {name: i for i, name in enumerate(names)}
    return torch.tensor([index[str(v)] for v in values], dtype=torch.int64), names


def _scaled(x: np.ndarray) -> torch.Tensor:
    """Pixels to float32 in [0, 1]: uint8 and 0..255 floats are divided by 255."""
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 becomes inf: checked later
        t = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: readers hand read-only views
    if x.dtype == np.uint8 or (t.numel() and t.max() > 1.0):
        t = t / 255.0
    return t


# What a damaged .gz/.bz2/.xz/.zip raises besides OSError: EOFError for a truncated stream
# (it would reach the CLI as click's "aborted"), and the codecs' own errors.
_DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def _one_line(err: BaseException) -> str:
    """A library's message on one line (pandas' parser errors end in a newline)."""
    return " ".join(str(err).split()) or type(err).__name__


def _float32(x: np.ndarray) -> np.ndarray:
    """A float32 view or copy; values past float32's range become inf (refused later)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32, copy=False)


def _nchw(x: np.ndarray, channels: int, where: str) -> np.ndarray:
    """Accept [N,H,W], [N,C,H,W] or channels-last [N,H,W,C]; return [N,C,H,W]."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] not in (1, channels) and x.shape[3] in (1, channels):
            return x.transpose(0, 3, 1, 2)
        return x
    raise DataError(
        f"images must be [N, H, W] or [N, C, H, W], got shape {list(x.shape)}", where=where
    )


def read_digits(config: DataConfig, path: str | None, want: Want) -> Raw:
    """scikit-learn's 1,797 handwritten 8x8 digits (UCI), shipped inside scikit-learn."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    return Raw(x, torch.from_numpy(bunch.target.astype(np.int64)), tuple(map(str, range(10))))


def read_synthetic(config: DataConfig, path: str | None, want: Want) -> Raw:
    """Class templates plus noise (learnable, for smoke tests and benchmarks); seeded."""
    g = torch.Generator().manual_seed(config.seed)
    n, (h, w) = config.samples, want.size
    _check_synthetic_fits(n, config.classes, want.channels * h * w)
    if config.task == "regress":
        x = torch.rand(n, want.channels, h, w, generator=g)
        return Raw(x, x.mean(dim=(2, 3)))  # target: each channel's mean brightness
    templates = torch.rand(config.classes, want.channels, h, w, generator=g)
    y = torch.randint(0, config.classes, (n,), generator=g)
    x = (0.7 * templates[y] + 0.3 * torch.rand(n, want.channels, h, w, generator=g)).clamp(0, 1)
    return Raw(x, y, tuple(str(i) for i in range(config.classes)))


def _check_synthetic_fits(samples: int, classes: int, pixels: int) -> None:
    """Generating the set takes its images twice over (templates plus noise) in float32: say
    so before asking torch, whose allocator error names no key."""
    from cnnkit.analysis.bounds import available_memory

    need = 4 * pixels * (2 * samples + classes)
    room = available_memory()
    if room is not None and need > room.bytes:
        raise DataError(
            f"{samples:,} synthetic images of {pixels:,} values need about {need / 2**30:,.1f} "
            f"GiB to generate, more than the {room.bytes / 2**30:,.1f} GiB available "
            f"({room.what}); lower data.samples or data.resize",
            where="data.samples",
        )


def _read_image(file: Path, want: Want) -> torch.Tensor:
    """One image at the stored size. ``Image.open`` reads only the header, so the declared
    size is checked before a pixel is decoded: a 1 KB file can claim 40000x40000 pixels."""
    from PIL import Image

    if not file.is_file():  # a FIFO would block the open for ever
        missing = "no such image file" if not file.exists() else "not a regular file"
        raise DataError(missing, where=str(file))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            with Image.open(file) as image:
                checks.check_image_size(*image.size, str(file))
                array = _decode(image, want, file)
    except Image.DecompressionBombError as err:  # PIL's own check at open, far over ours
        size = re.search(r"\((\d+) pixels\)", str(err))  # "Image size (N pixels) exceeds"
        declared = f"{int(size[1]):,}" if size else "too many"
        raise checks.image_too_large(declared, str(file)) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as err:
        # UnidentifiedImageError, "image file is truncated", and PIL's plugins' own
        # SyntaxError("broken PNG file") and struct errors on damaged chunks.
        detail = _one_line(err).replace(f"'{file}'", "").replace(str(file), "").strip(" :")
        raise DataError(
            f"cannot read image: {detail or type(err).__name__}", where=str(file)
        ) from None
    return _scaled(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


# Modes read as floats instead of through 8-bit conversion, which floors a float image's 0.5
# to 0, turns NaN into 0 and clips every 16-bit value over 255 to 255; the divisor brings
# 16-bit images to [0, 1] (float images follow the float-array rule of ``_scaled``).
_WIDE_MODES = {"F": 1.0, "I": 65535.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0}


def _decode(image: Any, want: Want, file: Path) -> np.ndarray:
    """Pixels at the stored size, ``[H, W]`` or ``[H, W, 3]``; float and 16-bit images
    (32-bit TIFFs, 16-bit PNGs) keep their values."""
    from PIL import Image

    size = (want.size[1], want.size[0])
    if image.mode not in _WIDE_MODES:
        image = image.convert("L" if want.channels == 1 else "RGB")
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
    divisor = _WIDE_MODES[image.mode]
    image = image.convert("F")
    if not np.isfinite(np.asarray(image, dtype=np.float32)).all():
        raise DataError("the image holds NaN or inf pixels", where=str(file))
    array = np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / divisor
    return array if want.channels == 1 else np.repeat(array[:, :, None], 3, axis=2)


def _images(files: list[Path], want: Want) -> torch.Tensor:
    return torch.stack([_read_image(f, want) for f in files]) if files else torch.empty(0)


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError("no such file or folder", where=path)
    return p


def read_folder(config: DataConfig, path: str | None, want: Want) -> Raw:
    """An image folder with one sub-folder per class (the ImageFolder layout)."""
    files, labels, classes = folder_files(path)
    return Raw(_images(files, want), torch.tensor(labels, dtype=torch.int64), classes)


def folder_files(path: str | None) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files of a class-per-sub-folder tree, their labels and the class names (the
    in-memory and the streaming readers list a folder the same way)."""
    root = _existing(str(path))
    if not root.is_dir():
        raise DataError("expected a folder with one sub-folder per class", where=str(root))
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError("no class sub-folders found", where=str(root))
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(
            f
            for f in (root / name).rglob("*")
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()  # not a folder or a FIFO
        )
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found", where=str(root))
    return files, labels, tuple(classes)


def _csv_table(file: Path, config: DataConfig) -> Any:
    """The table with its wanted columns present and no empty cell in them."""
    import pandas as pd

    try:
        table = pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError, *_DECOMPRESSION_ERRORS) as err:
        detail = "the compressed data ends early (truncated)" if isinstance(err, EOFError) else ""
        raise DataError(f"cannot read CSV: {detail or _one_line(err)}", where=str(file)) from None
    columns = list(table.columns)
    wanted = list(config.targets) if config.task == "regress" else [config.label_column]
    if config.path_column in columns:
        wanted.append(config.path_column)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"column {missing[0]!r} is absent (columns: {', '.join(map(str, columns[:8]))}"
            f"{', ...' if len(columns) > 8 else ''})",
            where=str(file),
        )
    if table.empty:
        raise DataError("the table has a header but no data rows", where=str(file))
    for column in wanted:
        count, first = checks.count_true(table[column].isna().to_numpy())
        if count:
            raise DataError(
                f"column {column!r} has {count} empty or NaN cell{'s' if count > 1 else ''} "
                f"(first: {checks.row_of(first)})",
                where=str(file),
            )
    return table


def _csv_pixels(pixels: Any, file: Path, want: Want) -> torch.Tensor:
    n_pix = pixels.shape[1]
    side = int(round((n_pix / want.channels) ** 0.5))
    if side * side * want.channels != n_pix:
        raise DataError(
            f"{n_pix} pixel columns do not make {want.channels}-channel square images",
            where=str(file),
        )
    values = pixels.to_numpy()
    if values.dtype.kind not in "biuf":
        raise DataError("pixel columns must be numbers", where=str(file))
    x = _scaled(_float32(values.reshape(-1, want.channels, side, side)))
    checks.check_images(x, str(file), checks.row_of)  # empty cells are NaN in pandas
    return x


def read_csv(config: DataConfig, path: str | None, want: Want) -> Raw:
    """A pixel table (``label,pixel0,...``; MNIST-CSV) or a ``path,label`` table of image files."""
    file = _existing(str(path))
    table = _csv_table(file, config)
    wanted = list(config.targets) if config.task == "regress" else [config.label_column]
    files = csv_files(file, table, config) if config.path_column in table.columns else None
    if files is not None:
        x = _images(files, want)
    else:
        x = _csv_pixels(table.drop(columns=wanted), file, want)
    y, classes = csv_targets(file, table, config)
    if files is not None and config.target_kind == "points":  # each file's frame, scaled
        from cnnkit.train.data.point_files import to_stored

        y = to_stored(y, files, want.size, str(file))
    return Raw(x, y, classes)


def csv_files(file: Path, table: Any, config: DataConfig) -> list[Path]:
    """The image files a ``path,label`` table names, relative to the table's folder."""
    return [file.parent / str(p) for p in table[config.path_column]]


def csv_targets(file: Path, table: Any, config: DataConfig) -> tuple[torch.Tensor, tuple[str, ...]]:
    """A table's labels and class names, or its regression targets (and no names)."""
    wanted = list(config.targets) if config.task == "regress" else [config.label_column]
    if config.task == "regress":
        y = checks.target_array(table[wanted].to_numpy(), f"{file}: {', '.join(wanted)}")
        checks.check_targets(y, str(file), checks.row_of)
        return y, ()
    return _labels(table[config.label_column].to_numpy(), str(file), checks.row_of)


def _npz_declared_sizes(file: Path) -> None:
    """An ``.npy`` header can declare any shape, and numpy allocates the declared size before
    it reads a byte: refuse an array that claims more than its zip entry can hold."""
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            deflated = info.compress_type == zipfile.ZIP_DEFLATED  # what np.savez_compressed uses
            if deflated and info.file_size > info.compress_size * checks.DEFLATE_RATIO + (1 << 16):
                raise DataError(
                    f"{info.filename} claims {info.file_size:,} bytes from "
                    f"{info.compress_size:,} compressed: damaged or a zip bomb",
                    where=str(file),
                )
            if info.filename not in ("x.npy", "y.npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0)):
                    continue  # 3.0 (utf-8 field names): left to np.load's own checks
                header = np.lib.format.read_array_header_1_0
                if version == (2, 0):
                    header = np.lib.format.read_array_header_2_0
                shape, _, dtype = header(member)
                need, room = math.prod(shape) * dtype.itemsize, info.file_size - member.tell()
            if need > room:
                raise DataError(
                    f"array {info.filename[:-4]!r} declares shape {list(shape)} "
                    f"({_amount(need)} bytes) but holds {room:,}: truncated or damaged",
                    where=str(file),
                )


def _npz_arrays(file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y``; a damaged archive (truncated, bad CRC) is one ``DataError``."""
    try:
        _npz_declared_sizes(file)
        with np.load(file, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays.files]
            if missing:
                raise DataError(
                    f"array {missing[0]!r} is absent (arrays: {', '.join(arrays.files)})",
                    where=str(file),
                )
            return arrays["x"], arrays["y"]
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,  # zipfile: "That compression method is not supported"
    ) as err:
        detail = _one_line(err)
        if isinstance(err, zipfile.BadZipFile):
            detail += " (truncated or not an npz)"
        raise DataError(f"cannot read npz: {detail}", where=str(file)) from None


def read_npz(config: DataConfig, path: str | None, want: Want) -> Raw:
    """A NumPy ``.npz`` with arrays ``x`` (images) and ``y`` (labels or targets)."""
    file = _existing(str(path))
    x, y = _npz_arrays(file)
    if x.ndim == 0 or y.ndim == 0:
        raise DataError("x and y must be arrays with one entry per image", where=str(file))
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} images but y has {len(y)} entries", where=str(file))
    checks.check_pixel_dtype(x, f"{file}: x")
    images = _scaled(_float32(_nchw(x, want.channels, str(file))))
    checks.check_images(images, f"{file}: x")
    if config.task == "regress":
        targets = checks.target_array(y, f"{file}: y")
        checks.check_targets(targets, f"{file}: y")
        return Raw(images, targets)
    labels, classes = _labels(y, f"{file}: y")
    return Raw(images, labels, classes)


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_header(handle: IO[bytes], where: str) -> tuple[np.dtype, tuple[int, ...]]:
    """The magic number and dimensions, checked before any data is read."""
    magic = handle.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise DataError("not an IDX file (bad magic number)", where=where)
    ndim = magic[3]
    if ndim == 0:
        raise DataError("IDX header declares 0 dimensions", where=where)
    raw_dims = handle.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} bytes, "
            f"the file has {4 + len(raw_dims)}",
            where=where,
        )
    dims = struct.unpack(f">{ndim}i", raw_dims)
    if min(dims) < 0:
        raise DataError(f"IDX header has a negative dimension: {list(dims)}", where=where)
    return np.dtype(_IDX_TYPES[magic[2]]), dims


def _idx_body(handle: IO[bytes], file: Path, need: int) -> bytes:
    """Exactly ``need`` bytes: a .gz is read no further than the header says (a bomb that
    inflates to gigabytes stops there), and cannot hold more than deflate's ratio allows."""
    size = file.stat().st_size
    limit = size * checks.DEFLATE_RATIO if file.suffix == ".gz" else size
    if need > limit:
        raise DataError(
            f"IDX header declares {_amount(need)} bytes of data, more than the file's "
            f"{size:,} bytes can hold (truncated or damaged)",
            where=str(file),
        )
    body = handle.read(need + 1)
    if len(body) != need:
        found = "more" if len(body) > need else f"{len(body):,}"
        raise DataError(f"IDX header says {need:,} bytes of data, found {found}", where=str(file))
    return body


def _amount(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"over {10**15:,}"  # 255 dimensions: a 600-digit number


def read_idx_file(file: Path) -> np.ndarray:
    """One IDX file (LeCun's MNIST format), raw or gzip-compressed."""
    try:
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rb") as handle:
            dtype, dims = _idx_header(handle, str(file))
            body = _idx_body(handle, file, math.prod(dims) * dtype.itemsize)
    except (OSError, EOFError, zlib.error) as err:  # EOFError: a truncated .gz
        detail = "the compressed data ends early (truncated)" if isinstance(err, EOFError) else err
        raise DataError(f"cannot read IDX file: {detail}", where=str(file)) from None
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _idx_find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        for candidate in (folder / name, folder / name.replace("-idx", ".idx")):
            if candidate.exists():
                return candidate
    return None


def _idx_pair(images: Path, labels: Path, config: DataConfig, want: Want) -> Raw:
    x = read_idx_file(images)
    y = read_idx_file(labels)
    if len(x) != len(y):
        raise DataError(f"{len(x)} images but {len(y)} labels in {labels}", where=str(images))
    labels_t, classes = _labels(y, str(labels))
    checks.check_pixel_dtype(x, str(images))
    x_t = _scaled(_nchw(x, want.channels, str(images)))
    checks.check_images(x_t, str(images))
    return Raw(x_t, labels_t, classes)


def read_idx(config: DataConfig, path: str | None, want: Want) -> Raw:
    """MNIST-style IDX: a folder with train-/t10k- images and labels, or one images file."""
    root = _existing(str(path))
    if root.is_file():
        labels = root.with_name(root.name.replace("images", "labels").replace("idx3", "idx1"))
        if labels == root or not labels.exists():
            raise DataError(
                f"no labels file next to it (looked for {labels.name})", where=str(root)
            )
        return _idx_pair(root, labels, config, want)
    found = {
        (split, part): _idx_find(root, f"{prefix}-{part}-idx{1 if part == 'labels' else 3}-ubyte")
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for part in ("images", "labels")
    }
    if found["train", "images"] is None or found["train", "labels"] is None:
        raise DataError(
            "no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in the folder",
            where=str(root),
        )
    train = _idx_pair(found["train", "images"], found["train", "labels"], config, want)
    if found["test", "images"] is not None and found["test", "labels"] is not None:
        train.given["test"] = _idx_pair(
            found["test", "images"], found["test", "labels"], config, want
        )
    return train


def read_torchvision(config: DataConfig, path: str | None, want: Want) -> Raw:
    """A ``torchvision.datasets`` class already on disk under ``data.path`` (no download)."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise MissingDependencyError(
            f"data source {config.name!r} needs torchvision: pip install 'cnnkit[vision]'"
        ) from None
    name = config.name.split(":", 1)[1]
    cls = getattr(tvd, name, None)
    if cls is None:
        raise DataError(f"torchvision.datasets has no {name!r}", where=config.name)

    def load(train: bool) -> Raw:
        try:
            dataset = cls(root=str(path or "."), train=train, download=False)
        except (RuntimeError, OSError) as err:
            raise DataError(f"cannot load: {err}", where=f"{config.name} at {path}") from None
        data = np.asarray(dataset.data)
        labels, classes = _labels(np.asarray(dataset.targets), config.name)
        return Raw(_scaled(_nchw(data, want.channels, config.name)), labels, classes)

    raw = load(True)
    raw.given["test"] = load(False)
    return raw


def read_dots(config: DataConfig, path: str | None, want: Want) -> Raw:
    """Generated dot images and their centres (``cnnkit.train.data.dots``)."""
    from cnnkit.train.data.dots import dots

    return dots(config.samples, want, config.seed)


Reader = Callable[[DataConfig, "str | None", Want], Raw]

SOURCES: dict[str, Reader] = {
    "digits": read_digits,
    "synthetic": read_synthetic,
    "folder": read_folder,
    "csv": read_csv,
    "npz": read_npz,
    "idx": read_idx,
    "torchvision": read_torchvision,
    "dots": read_dots,
}


def read_source(config: DataConfig, path: str | None, want: Want) -> Raw:
    """Dispatch on ``data.name`` (``torchvision:NAME`` goes to the torchvision reader), then
    check what any reader returned: finite pixels and targets, images with pixels."""
    where = config.name if path is None else str(path)
    try:
        if config.task == "segment":
            from cnnkit.train.data.segment import read_segment

            raw = read_segment(config, path, want)
        else:
            raw = SOURCES[config.name.split(":", 1)[0]](config, path, want)
    except MemoryError:
        raise DataError(
            "the data does not fit in memory (as float32 images); use data.limit or a smaller "
            "data.resize",
            where=where,
        ) from None
    for part in (raw, *raw.given.values()):
        checks.check_images(part.x, where)
        if part.y.is_floating_point():
            checks.check_targets(part.y, where)
    return raw
