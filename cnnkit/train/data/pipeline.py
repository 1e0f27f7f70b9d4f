"""From a ``DataConfig`` to normalised train/val/test tensors that fit the recipe's input.

Order matters and is fixed: read (given splits relabelled into the train split's classes) ->
fit channels and size -> limit (a seeded sample, stratified by class) -> split (seeded,
optionally stratified, or as the source gives it) -> normalise with the train split's
statistics -> centre-crop eval splits.
Every mismatch with the recipe is found here, before any training starts.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from cnnkit.errors import DataError
from cnnkit.train.config import STREAM_SOURCES, TEXT_SOURCES, Augment, DataConfig
from cnnkit.train.data.augment import CROPPING
from cnnkit.train.data.sources import Raw, Want, read_source

# Sources whose images have no fixed size of their own: always resized to the recipe input.
AUTO_RESIZE = {"digits", "synthetic", "folder"}


@dataclass
class Split:
    """One split held as whole tensors: ``x`` float32 [N, C, H, W] normalised, ``y`` targets."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def batches(
        self, order: torch.Tensor, size: int, epoch: int | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """(x, y) for each run of ``size`` indices of ``order``: the training loop's batches
        (``StreamSplit`` offers the same, so the loop does not care where images live;
        ``epoch`` seeds its per-image augmentation, and is not needed here)."""
        for start in range(0, len(order), size):
            index = order[start : start + size]
            yield self.x[index], self.y[index]

    def slices(self, starts: Iterable[int], size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """(x, y) of samples ``start .. start + size`` for each start: evaluation's batches."""
        for start in starts:
            yield self.x[start : start + size], self.y[start : start + size]

    def head(self, n: int) -> torch.Tensor:
        """The first ``n`` images, as the model sees them (a shape check before training)."""
        return self.x[:n]

    def to(self, device: torch.device | str) -> Split:
        """The split on ``device``: uploaded once, so training never copies a batch from the
        host; to a GPU through pinned memory with a non-blocking copy."""
        if torch.device(device).type != "cuda" or self.x.device.type != "cpu":
            return Split(self.x.to(device), self.y.to(device))
        return Split(
            self.x.pin_memory().to(device, non_blocking=True),
            self.y.pin_memory().to(device, non_blocking=True),
        )


@dataclass
class DataBundle:
    """Everything training and evaluation need from the data, plus what to save with a model."""

    train: Split
    val: Split | None
    test: Split | None
    task: str
    classes: tuple[str, ...]  # empty for regression
    mean: tuple[float, ...]  # per-channel statistics of the train split, stored in checkpoints
    std: tuple[float, ...]
    input_shape: tuple[int, ...]
    source: str  # "digits", or "npz:data/x.npz": for tables and summaries
    augment: tuple[Augment, ...] = ()  # training-time augmentations (applied per batch)
    fingerprint: str = ""  # BLAKE2b of the loaded splits: a resume over changed data is refused
    vocab: tuple[str, ...] = ()  # text: the words of the token ids, id = position (data/text.py)
    target_kind: str = "values"  # regress: points move with the image (data/points.py)
    cache: str = "memory"  # memory: whole tensors; stream: decoded per batch (data/stream.py)

    @property
    def outputs(self) -> int:
        """How many values the model must produce per image."""
        if self.task in ("classify", "segment"):
            return len(self.classes)  # segment: per pixel
        return int(self.train.y.shape[1])

    def channels_last(self) -> DataBundle:
        """The same data with 4-D images stored in NHWC order (for channels_last training)."""

        def nhwc(split: Split | None) -> Split | None:
            if split is not None and hasattr(split, "nhwc"):  # a StreamSplit: per batch
                return split.nhwc()
            if split is None or split.x.dim() != 4:
                return split
            return Split(split.x.contiguous(memory_format=torch.channels_last), split.y)

        return replace(self, train=nhwc(self.train), val=nhwc(self.val), test=nhwc(self.test))

    def to(self, device: torch.device | str) -> DataBundle:
        def move(split: Split | None) -> Split | None:
            return None if split is None else split.to(device)

        return replace(self, train=self.train.to(device), val=move(self.val), test=move(self.test))


def _fit(raw: Raw, config: DataConfig, want: Want, where: str) -> Raw:
    x = raw.x
    if x.shape[1] != want.channels:
        if x.shape[1] == 1:
            x = x.expand(-1, want.channels, -1, -1)  # grey images for a colour recipe
        else:
            raise DataError(
                f"images have {x.shape[1]} channels but the recipe's input has {want.channels}",
                where=where,
            )
    size = tuple(x.shape[2:])
    if size != want.size:
        if config.name not in AUTO_RESIZE and config.resize is None:
            h, w = want.size
            raise DataError(
                f"images are {size[0]}x{size[1]} but the recipe's input is {h}x{w}; "
                f"set data.resize: [{h}, {w}] (--set data.resize=[{h},{w}]) to resize them",
                where=where,
            )
        x = F.interpolate(x, size=want.size, mode="bilinear", align_corners=False, antialias=True)
    y = _checked_points(raw.y, where) if config.target_kind == "points" else raw.y
    if config.target_kind == "points" and size != want.size:
        from cnnkit.train.data.points import resized

        y = resized(y, size, want.size)
    given = {k: _fit(v, config, want, where) for k, v in raw.given.items()}
    return Raw(x.contiguous(), y, raw.classes, given)


def _checked_points(y: torch.Tensor, where: str) -> torch.Tensor:
    """Point targets are float rows of (x, y) pairs: [x0, y0, x1, y1, ...]."""
    if not y.is_floating_point() or y.dim() != 2 or y.shape[1] % 2:
        columns = y.shape[1] if y.dim() == 2 else 1
        raise DataError(
            f"data.target_kind points needs an even number of numeric targets "
            f"(x0, y0, x1, y1, ...), got {columns} per sample",
            where=where,
        )
    return y


def _read(config: DataConfig, want: Want) -> Raw:
    if isinstance(config.path, Mapping):
        raw = read_source(config, config.path["train"], want)
        for split in ("val", "test"):
            if split in config.path:
                raw.given[split] = read_source(config, config.path[split], want)
    else:
        raw = read_source(config, config.path, want)
    if config.task == "classify":
        raw.given = {
            split: _to_vocabulary(given, raw.classes, split, _split_path(config, split))
            for split, given in raw.given.items()
        }
    return raw


def _split_path(config: DataConfig, split: str) -> str:
    if isinstance(config.path, Mapping):
        return config.path.get(split, config.path_text)
    return config.path_text


def _to_vocabulary(raw: Raw, classes: tuple[str, ...], split: str, where: str) -> Raw:
    """Relabel a given split by class name into the train split's vocabulary.

    Each source indexes its own sorted class list, so a test folder that lacks a class would
    otherwise shift every later label by one; a class the train split never had is an error.
    """
    if raw.classes == classes[: len(raw.classes)] or raw.y.dtype != torch.int64:
        return raw
    index = {name: i for i, name in enumerate(classes)}
    used = [raw.classes[i] for i in torch.unique(raw.y).tolist()]
    unknown = [name for name in used if name not in index]
    if unknown:
        raise DataError(
            f"the {split} split has classes the train split lacks: {', '.join(unknown[:5])}"
            f" (train classes: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})",
            where=where,
        )
    mapping = torch.tensor([index.get(name, -1) for name in raw.classes], dtype=torch.int64)
    return Raw(raw.x, mapping[raw.y], classes, raw.given)


def _allocate(counts: torch.Tensor, total: int) -> torch.Tensor:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, so the
    parts sum to ``total`` and each is within one of its exact share)."""
    share = counts.double() * total / max(int(counts.sum()), 1)
    parts = share.floor().long()
    left = total - int(parts.sum())
    if left > 0:
        order = torch.argsort(share - parts, descending=True, stable=True)
        parts[order[:left]] += 1
    return parts


def _by_class(y: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
    """Each class's sample indices, in a seeded random order."""
    groups = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        groups.append(members[torch.randperm(len(members), generator=g)])
    return groups


def _stratified(y: torch.Tensor, sizes: list[int], seed: int) -> list[torch.Tensor]:
    """Disjoint index sets of the given sizes, each with the classes' proportions of ``y``."""
    groups = _by_class(y, torch.Generator().manual_seed(seed))
    remaining = torch.tensor([len(m) for m in groups])
    taken = torch.zeros_like(remaining)
    out = []
    for size in sizes:
        parts = _allocate(remaining, size)
        picked = [m[int(t) : int(t + k)] for m, t, k in zip(groups, taken, parts)]
        out.append(torch.sort(torch.cat(picked)).values if picked else torch.empty(0).long())
        taken, remaining = taken + parts, remaining - parts
    return out


def _limit(raw: Raw, config: DataConfig) -> Raw:
    """A seeded sample of ``data.limit`` rows, stratified by class when classifying: the
    first N rows of a class-sorted source would all be one class."""
    n = len(raw.y)
    if config.limit is None or config.limit >= n:
        return raw
    if config.task == "classify" and raw.y.dtype == torch.int64:
        (keep,) = _stratified(raw.y, [config.limit], config.seed)
    else:
        g = torch.Generator().manual_seed(config.seed)
        keep = torch.sort(torch.randperm(n, generator=g)[: config.limit]).values
    return Raw(raw.x[keep], raw.y[keep], raw.classes, raw.given)


def split_raw(raw: Raw, config: DataConfig) -> tuple[Split, Split | None, Split | None]:
    """Given splits relabelled into the train split's classes, then limit and split: the
    steps text and signal sources share with images (data/text.py, data/signals.py)."""
    if config.task == "classify":
        raw.given = {
            split: _to_vocabulary(given, raw.classes, split, _split_path(config, split))
            for split, given in raw.given.items()
        }
    return _split(_limit(raw, config), config)


def _split(raw: Raw, config: DataConfig) -> tuple[Split, Split | None, Split | None]:
    n = len(raw.y)
    if n == 0:
        raise DataError("the data set is empty", where=config.path_text)
    n_test = 0 if "test" in raw.given else round(n * config.test)
    n_val = 0 if "val" in raw.given else round(n * config.val)
    if n - n_test - n_val < 1:
        raise DataError(f"only {n} samples: nothing left to train on", where=config.path_text)
    if config.stratify:
        test_i, val_i, train_i = _stratified(
            raw.y, [n_test, n_val, n - n_test - n_val], config.seed
        )
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
        test_i, val_i = order[:n_test], order[n_test : n_test + n_val]
        train_i = order[n_test + n_val :]

    def take(index: torch.Tensor, name: str) -> Split | None:
        if name in raw.given:
            g = raw.given[name]
            return Split(g.x, g.y)
        return Split(raw.x[index], raw.y[index]) if len(index) else None

    train = take(train_i, "train")
    assert train is not None
    return train, take(val_i, "val"), take(test_i, "test")


def fingerprint(splits: dict[str, Split | None], classes: tuple[str, ...]) -> str:
    """A BLAKE2b digest of the loaded splits (images as stored, before normalisation; targets;
    class names): cheap next to reading the data, and any change to a pixel, a label, the
    split or the resize shows, whatever the source."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\n".join(classes).encode())
    for name, split in splits.items():
        if split is None:
            continue
        for t in (split.x, split.y):
            h.update(f"|{name}:{t.dtype}:{list(t.shape)}|".encode())
            h.update(t.detach().cpu().contiguous().numpy())  # hashed in place, not copied
    return h.hexdigest()


def _centre_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, top : top + size[0], left : left + size[1]].contiguous()


def _cropped_targets(
    y: torch.Tensor, before: tuple[int, int], size: tuple[int, int], config: DataConfig
) -> torch.Tensor:
    """Targets that live in the image follow its centre crop: masks, and points."""
    if y.dim() == 3:  # segmentation masks
        return _centre_crop(y[:, None], size)[:, 0]
    if config.target_kind == "points":
        from cnnkit.train.data.points import centre_cropped

        return centre_cropped(y, before, size)
    return y


@contextlib.contextmanager
def _fits_memory(config: DataConfig) -> Iterator[None]:
    """Decoding or resizing a set that memory cannot hold is one line naming the keys to
    change; torch's allocator says it as a RuntimeError that names none."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        raise DataError(
            "the data does not fit in memory (as float32 images); use data.limit or a smaller "
            "data.resize",
            where=config.path_text,
        ) from None


def load_data(
    config: DataConfig,
    input_shape: tuple[int, ...],
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    vocab: tuple[str, ...] | None = None,
    embedding: int | None = None,
) -> DataBundle:
    """Read, check and prepare the data for a recipe whose input is ``[C, H, W]`` (images),
    ``[L]`` (text: token ids) or ``[C, L]`` (1-D signals).

    ``stats`` (mean, std) replaces the train split's statistics, ``vocab`` the vocabulary
    built on it: evaluation must encode new data exactly as the model saw its training data.
    ``embedding`` (the model's embedding rows) caps a vocabulary built here.
    """
    if (elsewhere := _elsewhere(config, input_shape, stats, vocab, embedding)) is not None:
        return elsewhere
    want = _wanted(config, input_shape)
    channels, height, width = input_shape
    with _fits_memory(config):
        raw = _fit(_read(config, want), config, want, config.path_text)
    raw = _limit(raw, config)
    if config.task == "classify" and raw.y.dtype != torch.int64:
        raise DataError("task classify needs integer or named labels", where=config.path_text)
    if config.task == "regress" and not raw.y.is_floating_point():
        raise DataError("task regress needs numeric targets", where=config.path_text)
    train, val, test = _split(raw, config)
    classes = raw.classes if config.task in ("classify", "segment") else ()
    if classes and train.y.numel() and int(train.y.max()) >= len(classes):
        classes = tuple(str(i) for i in range(int(train.y.max()) + 1))

    digest = fingerprint({"train": train, "val": val, "test": test}, classes)
    mean, std = _statistics(config, train, channels, stats)
    crops_in_training = any(a.kind in CROPPING for a in config.augment)

    def prepare(split: Split | None, is_train: bool) -> Split | None:
        if split is None:
            return None
        x = (split.x - mean[None, :, None, None]) / std[None, :, None, None]
        y = split.y
        if tuple(x.shape[2:]) != (height, width) and not (is_train and crops_in_training):
            x = _centre_crop(x, (height, width))
            y = _cropped_targets(y, tuple(split.x.shape[2:]), (height, width), config)
        return Split(x.float().contiguous(), y)

    prepared = prepare(train, True)
    assert prepared is not None
    return DataBundle(
        train=prepared,
        val=prepare(val, False),
        test=prepare(test, False),
        task=config.task,
        classes=classes,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        input_shape=tuple(input_shape),
        source=config.name if config.path is None else f"{config.name}:{config.path_text}",
        augment=config.augment,
        fingerprint=digest,
        target_kind=config.target_kind,
    )


def _elsewhere(
    config: DataConfig,
    input_shape: tuple[int, ...],
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None,
    vocab: tuple[str, ...] | None,
    embedding: int | None,
) -> DataBundle | None:
    """The bundles ``load_data``'s in-memory image path does not make: token ids and signals,
    and image files that stream (None: ``auto`` found that they fit in memory)."""
    if config.name in TEXT_SOURCES or len(input_shape) in (1, 2):
        return _sequences(config, input_shape, stats, vocab, embedding)
    if config.cache != "memory" and config.name in STREAM_SOURCES:
        from cnnkit.train.data.stream_load import load_stream

        return load_stream(config, input_shape, _wanted(config, input_shape), stats)
    return None


def _sequences(
    config: DataConfig,
    input_shape: tuple[int, ...],
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None,
    vocab: tuple[str, ...] | None,
    embedding: int | None,
) -> DataBundle:
    """Token ids for a text source or an input ``[L]``; 1-D signals for an input ``[C, L]``."""
    if config.target_kind == "points":
        raise DataError(
            "data.target_kind points are pixel coordinates: they need images (a recipe input "
            f"[C, H, W]), the recipe has {list(input_shape)}",
            where=config.name,
        )
    if config.name in TEXT_SOURCES or len(input_shape) == 1:
        from cnnkit.train.data.text import load_text

        return load_text(config, input_shape, vocab or None, embedding)
    from cnnkit.train.data.signals import load_signals

    with _fits_memory(config):
        return load_signals(config, input_shape, stats)


def _wanted(config: DataConfig, input_shape: tuple[int, ...]) -> Want:
    """What to read for a recipe input ``[C, H, W]``: C channels at data.resize (default H x W),
    which may not be smaller than the input."""
    if config.name == "waves":
        raise DataError(
            f"waves are 1-D signals: they need a recipe input [C, L], the recipe has "
            f"{list(input_shape)}",
            where=config.name,
        )
    if len(input_shape) != 3:
        raise DataError(
            f"image data needs a recipe input [C, H, W], the recipe has {list(input_shape)}",
            where=config.name,
        )
    channels, height, width = input_shape
    size = config.resize or (height, width)
    if size[0] < height or size[1] < width:
        raise DataError(
            f"data.resize {list(size)} is smaller than the recipe input {height}x{width}",
            where=config.name,
        )
    return Want(channels, size)


def _statistics(
    config: DataConfig,
    train: Split,
    channels: int,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) to normalise with: the given ones (evaluation), the train
    split's (data.normalize), or none (0 and 1)."""
    if stats is not None:
        return torch.tensor(stats[0]), torch.tensor(stats[1])
    if config.normalize:
        return train.x.mean(dim=(0, 2, 3)), train.x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return torch.zeros(channels), torch.ones(channels)
