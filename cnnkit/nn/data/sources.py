"""Readers for every data source, one function each, looked up in ``SOURCES`` by name.

A reader returns ``Raw``: images as float32 ``[N, C, H, W]`` scaled to [0, 1] (any size; the
pipeline fits them to the recipe), targets, class names, and any splits the source itself
defines (MNIST's train/t10k files). Every problem is a ``DataError`` naming the file.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnkit.errors import DataError, MissingDependencyError
from cnnkit.runconfig import DataConfig

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


def _labels(values: np.ndarray, where: str, classes: tuple[str, ...] = ()) -> tuple:
    """Integer labels as they are; anything else mapped to sorted class names."""
    if values.dtype.kind in "iu" or (
        values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == values // 1)
    ):
        labels = values.astype(np.int64)
        if labels.size and labels.min() < 0:
            raise DataError(
                f"labels must be non-negative integers, found {labels.min()}", where=where
            )
        names = classes or tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0))
        return torch.from_numpy(labels), names
    names = classes or tuple(sorted({str(v) for v in values}))
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in values} - set(index))
    if unknown:
        raise DataError(f"labels {unknown[:5]} are not among the train classes", where=where)
    return torch.tensor([index[str(v)] for v in values], dtype=torch.int64), names


def _scaled(x: np.ndarray) -> torch.Tensor:
    """Pixels to float32 in [0, 1]: uint8 and 0..255 floats are divided by 255."""
    t = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: readers may hand read-only views
    if x.dtype == np.uint8 or (t.numel() and t.max() > 1.0):
        t = t / 255.0
    return t


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
    if config.task == "regress":
        x = torch.rand(n, want.channels, h, w, generator=g)
        return Raw(x, x.mean(dim=(2, 3)))  # target: each channel's mean brightness
    templates = torch.rand(config.classes, want.channels, h, w, generator=g)
    y = torch.randint(0, config.classes, (n,), generator=g)
    x = (0.7 * templates[y] + 0.3 * torch.rand(n, want.channels, h, w, generator=g)).clamp(0, 1)
    return Raw(x, y, tuple(str(i) for i in range(config.classes)))


def _read_image(file: Path, want: Want) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image = image.convert("L" if want.channels == 1 else "RGB")
            image = image.resize((want.size[1], want.size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"cannot read image: {err}", where=str(file)) from None
    return _scaled(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def _images(files: list[Path], want: Want) -> torch.Tensor:
    return torch.stack([_read_image(f, want) for f in files]) if files else torch.empty(0)


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError("no such file or folder", where=path)
    return p


def read_folder(config: DataConfig, path: str | None, want: Want) -> Raw:
    """An image folder with one sub-folder per class (the ImageFolder layout)."""
    root = _existing(str(path))
    if not root.is_dir():
        raise DataError("expected a folder with one sub-folder per class", where=str(root))
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError("no class sub-folders found", where=str(root))
    files, labels = [], []
    for i, name in enumerate(classes):
        found = sorted(f for f in (root / name).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found", where=str(root))
    return Raw(_images(files, want), torch.tensor(labels, dtype=torch.int64), tuple(classes))


def read_csv(config: DataConfig, path: str | None, want: Want) -> Raw:
    """A pixel table (``label,pixel0,...``; MNIST-CSV) or a ``path,label`` table of image files."""
    import pandas as pd

    file = _existing(str(path))
    try:
        table = pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read CSV: {err}", where=str(file)) from None
    columns = list(table.columns)
    wanted = list(config.targets) if config.task == "regress" else [config.label_column]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"column {missing[0]!r} is absent (columns: {', '.join(map(str, columns[:8]))}"
            f"{', ...' if len(columns) > 8 else ''})",
            where=str(file),
        )
    if config.path_column in columns:
        paths = [file.parent / p for p in table[config.path_column].astype(str)]
        x = _images(paths, want)
    else:
        pixels = table.drop(columns=wanted)
        n_pix = pixels.shape[1]
        side = int(round((n_pix / want.channels) ** 0.5))
        if side * side * want.channels != n_pix:
            raise DataError(
                f"{n_pix} pixel columns do not make {want.channels}-channel square images",
                where=str(file),
            )
        values = pixels.to_numpy()
        if values.dtype.kind not in "iuf":
            raise DataError("pixel columns must be numbers", where=str(file))
        x = _scaled(values.reshape(-1, want.channels, side, side).astype(np.float32))
    if config.task == "regress":
        return Raw(x, torch.from_numpy(np.array(table[wanted], dtype=np.float32)))
    y, classes = _labels(table[config.label_column].to_numpy(), str(file))
    return Raw(x, y, classes)


def read_npz(config: DataConfig, path: str | None, want: Want) -> Raw:
    """A NumPy ``.npz`` with arrays ``x`` (images) and ``y`` (labels or targets)."""
    file = _existing(str(path))
    try:
        with np.load(file, allow_pickle=False) as arrays:
            missing = [k for k in ("x", "y") if k not in arrays.files]
            if missing:
                raise DataError(
                    f"array {missing[0]!r} is absent (arrays: {', '.join(arrays.files)})",
                    where=str(file),
                )
            x, y = arrays["x"], arrays["y"]
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read npz: {err}", where=str(file)) from None
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} images but y has {len(y)} entries", where=str(file))
    images = _scaled(_nchw(x, want.channels, str(file)).astype(np.float32, copy=False))
    if config.task == "regress":
        return Raw(images, torch.from_numpy(y.astype(np.float32).reshape(len(y), -1)))
    labels, classes = _labels(y, str(file))
    return Raw(images, labels, classes)


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_file(file: Path) -> np.ndarray:
    """One IDX file (LeCun's MNIST format), raw or gzip-compressed."""
    try:
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise DataError(f"cannot read IDX file: {err}", where=str(file)) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError("not an IDX file (bad magic number)", where=str(file))
    ndim = data[3]
    dims = struct.unpack(f">{ndim}i", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != need:
        raise DataError(f"IDX header says {need} bytes of data, found {len(body)}", where=str(file))
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
    return Raw(_scaled(_nchw(x, want.channels, str(images))), labels_t, classes)


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


Reader = Callable[[DataConfig, "str | None", Want], Raw]

SOURCES: dict[str, Reader] = {
    "digits": read_digits,
    "synthetic": read_synthetic,
    "folder": read_folder,
    "csv": read_csv,
    "npz": read_npz,
    "idx": read_idx,
    "torchvision": read_torchvision,
}


def read_source(config: DataConfig, path: str | None, want: Want) -> Raw:
    """Dispatch on ``data.name`` (``torchvision:NAME`` goes to the torchvision reader)."""
    return SOURCES[config.name.split(":", 1)[0]](config, path, want)
