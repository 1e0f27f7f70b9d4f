"""``load_data`` for ``data.cache: stream`` (and ``auto`` over its budget): a ``DataBundle``
of ``StreamSplit``s over image files, checked and split before any training.

Steps, in ``pipeline.load_data``'s order: list the files (the readers' own listing), decide
(``auto``: the decoded float32 images against ``data.memory_budget``), limit and split an
index per file with the in-memory path's functions, check every used file's header (PIL
``open`` + ``verify``: a bad file fails here, in one line, not in a worker mid-epoch), take
the fingerprint from the file list, then mean and std in one decoding pass over the train
split (exact integer sums of the uint8 pixels).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from cnnkit.errors import DataError
from cnnkit.train.config import DataConfig
from cnnkit.train.data import checks, sources
from cnnkit.train.data.augment import CROPPING
from cnnkit.train.data.pipeline import DataBundle, _limit, _split, _to_vocabulary
from cnnkit.train.data.sources import Raw, Want
from cnnkit.train.data.stream import (
    STATS_BATCH,
    MiB,
    Normalise,
    StreamSplit,
    default_workers,
)

Listing = tuple  # (files, targets, class names[, masks])


def _list_one(config: DataConfig, path: str) -> Listing | None:
    """One folder's or table's files, targets and class names; None for a pixel table.
    Segment: the images, an index as placeholder targets, the class names and the masks."""
    if config.task == "segment":
        from cnnkit.train.data import segment

        root = sources._existing(path)
        pairs = segment._csv_pairs(root) if config.name == "csv" else segment._folder_pairs(root)
        images = [str(image) for image, _ in pairs]
        masks = [None if mask is None else str(mask) for _, mask in pairs]
        return images, torch.arange(len(pairs)), segment.class_names(config), masks
    if config.name == "folder":
        files, labels, classes = sources.folder_files(path)
        return [str(f) for f in files], torch.tensor(labels, dtype=torch.int64), classes
    file = sources._existing(path)
    table = sources._csv_table(file, config)
    if config.path_column not in table.columns:
        return None
    y, classes = sources.csv_targets(file, table, config)
    return [str(f) for f in sources.csv_files(file, table, config)], y, classes


def _listed(config: DataConfig) -> tuple[list[str], Raw, list[str | None]] | None:
    """Every file of every given split, and a ``Raw`` whose ``x`` indexes them (one list, so
    the in-memory limit and split functions pick files as they pick images)."""
    paths = dict(config.path) if isinstance(config.path, Mapping) else {"train": config.path}
    files: list[str] = []
    masks: list[str | None] = []
    raws: dict[str, Raw] = {}
    for split, path in paths.items():
        listing = _list_one(config, str(path))
        if listing is None:
            return None
        index = torch.arange(len(files), len(files) + len(listing[0]))
        files += listing[0]
        masks += listing[3] if len(listing) > 3 else []
        raws[split] = Raw(index, listing[1], listing[2])
    raw = raws.pop("train")
    raw.given = raws
    if config.task == "classify":
        raw.given = {
            split: _to_vocabulary(given, raw.classes, split, str(paths[split]))
            for split, given in raw.given.items()
        }
    return files, raw, masks


def _check_masks(
    config: DataConfig, want: Want, images: list[str], masks: list[str | None]
) -> torch.Tensor:
    """Each mask read once as training will read it (missing, wrong size or mode, an index
    past data.classes: every bad pair listed, as in memory); returns each mask's largest
    index, the split's ``y``."""
    from cnnkit.train.data import segment

    largest, bad = [], []
    for image, mask in zip(images, masks):
        try:
            m = segment._read_mask(Path(image), Path(mask) if mask else None, config, want)
            largest.append(int(m.max()))
        except DataError as err:
            bad.append(str(err))
    if bad:
        raise segment._bad_pairs(bad, config.path_text, len(images))
    return torch.tensor(largest, dtype=torch.int64)


def check_file(file: str) -> None:
    """The header of one image: there, a regular file, a size cnnkit decodes, an 8-bit mode,
    and chunks that ``verify`` (a truncated or damaged file fails here, before training)."""
    from PIL import Image

    path = Path(file)
    if not path.is_file():
        raise DataError(
            "no such image file" if not path.exists() else "not a regular file", where=file
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                checks.check_image_size(*image.size, file)
                if image.mode in sources._WIDE_MODES:
                    raise DataError(
                        f"a {image.mode} image (16-bit or float) keeps its values only in "
                        "memory: set data.cache: memory",
                        where=file,
                    )
                image.verify()
    except Image.DecompressionBombError:
        raise checks.image_too_large("too many", file) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        detail = sources._one_line(err).replace(f"'{file}'", "").replace(file, "").strip(" :")
        raise DataError(f"cannot read image: {detail}", where=file) from None


def file_fingerprint(splits: Mapping[str, StreamSplit | None], classes: tuple[str, ...]) -> str:
    """BLAKE2b of the class names and, per split, each file's path, size and modification
    time, and the targets: a changed, added or moved file refuses a resume, as a changed
    pixel does in memory, without reading the images."""
    h = hashlib.blake2b(digest_size=16)
    h.update(("stream\n" + "\n".join(classes)).encode())
    for name, split in splits.items():
        if split is None:
            continue
        h.update(f"|{name}:{len(split)}|".encode())
        for file in (*split.files, *(m for m in split.masks if m)):
            st = Path(file).stat()
            h.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(f"{split.y.dtype}:{list(split.y.shape)}".encode())
        h.update(split.y.contiguous().numpy())
    return h.hexdigest()


def pixel_statistics(split: StreamSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and unbiased std of ``split``'s images / 255, in one decoding pass:
    integer sums of the uint8 values, so the figures are exact (then rounded once)."""
    c = split.want.channels
    total, squares, n = [0] * c, [0] * c, 0
    loader = split.loader()
    loader.batch_sampler.batches = [
        list(range(s, min(s + STATS_BATCH, len(split)))) for s in range(0, len(split), STATS_BATCH)
    ]
    for item in loader:
        if isinstance(item, str):
            raise DataError(item)
        x = item[0].long()
        total = [a + b for a, b in zip(total, x.sum(dim=(0, 2, 3)).tolist())]
        squares = [a + b for a, b in zip(squares, (x * x).sum(dim=(0, 2, 3)).tolist())]
        n += x.shape[0] * x.shape[2] * x.shape[3]
    mean = tuple(s / (255 * n) for s in total)
    var = [(n * q - s * s) / (n * max(n - 1, 1) * 255 * 255) for s, q in zip(total, squares)]
    return mean, tuple(max(math.sqrt(v), 1e-6) for v in var)


def _fits(config: DataConfig, count: int, want: Want) -> bool:
    """``auto``: whether ``count`` decoded float32 images (and int64 masks, for task segment)
    fit ``data.memory_budget`` MiB."""
    per_pixel = want.channels * 4 + (8 if config.task == "segment" else 0)
    need = count * want.size[0] * want.size[1] * per_pixel
    return need <= config.memory_budget * MiB


def load_stream(
    config: DataConfig,
    input_shape: tuple[int, ...],
    want: Want,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataBundle | None:
    """The streaming bundle, or None where ``auto`` keeps the in-memory path (the set fits
    the budget, or a csv holds pixels rather than paths)."""
    listed = _listed(config)
    if listed is None:
        if config.cache == "stream":
            raise DataError(
                f"the table has no {config.path_column!r} column of image paths (its pixels "
                "are read whole): set data.cache: memory",
                where=config.path_text,
            )
        return None
    files, raw, masks = listed
    if config.cache == "auto" and _fits(config, len(files), want):
        return None
    raw = _limit(raw, config)
    if config.target_kind == "points":  # in each file's frame, scaled as the file is
        from cnnkit.train.data.point_files import stored_points

        raw = stored_points(raw, files, want, config.path_text)
    if config.task == "classify" and raw.y.dtype != torch.int64:
        raise DataError("task classify needs integer or named labels", where=config.path_text)
    if config.task == "regress" and not raw.y.is_floating_point():
        raise DataError("task regress needs numeric targets", where=config.path_text)
    splits = dict(zip(("train", "val", "test"), _split(raw, config)))
    streamed = _stream_splits(config, want, files, masks, splits)  # masks first: all listed
    for split in splits.values():
        for i in [] if split is None else split.x.tolist():
            check_file(files[i])
    return _bundle(config, input_shape, want, raw, streamed, stats)


def _stream_splits(config, want, files, masks, splits) -> dict[str, StreamSplit | None]:
    """A StreamSplit per split (not yet normalised); segment: its masks checked first."""
    workers = default_workers() if config.workers is None else config.workers
    plain = Normalise((0.0,) * want.channels, (1.0,) * want.channels)
    streamed: dict[str, StreamSplit | None] = {}
    for name, split in splits.items():
        if split is None:
            streamed[name] = None
            continue
        index = split.x.tolist()
        images, y = [files[i] for i in index], split.y
        chosen = tuple(masks[i] for i in index) if masks else ()
        if masks:
            y = _check_masks(config, want, images, list(chosen))
        steps = tuple((a.kind, dict(a.args)) for a in config.sample_augment)
        streamed[name] = StreamSplit(
            tuple(images), y, want, plain, workers, chosen, config, steps if name == "train" else ()
        )
    return streamed


def _bundle(config, input_shape, want, raw, streamed, stats) -> DataBundle:
    """The bundle of ``streamed``, normalised with the train split's statistics."""
    classes = raw.classes if config.task in ("classify", "segment") else ()
    train_y = streamed["train"].y
    if classes and train_y.numel() and int(train_y.max()) >= len(classes):
        classes = tuple(str(i) for i in range(int(train_y.max()) + 1))
    size = tuple(input_shape[1:])
    plain = Normalise((0.0,) * want.channels, (1.0,) * want.channels)
    if stats is not None:
        mean, std = stats
    elif config.normalize:
        mean, std = pixel_statistics(streamed["train"])
    else:
        mean, std = plain.mean, plain.std
    crops_in_training = any(a.kind in CROPPING for a in config.augment)
    for name, split in streamed.items():
        if split is not None:
            keep = name == "train" and crops_in_training
            crop = None if keep else size
            split.normalise = Normalise(
                tuple(mean), tuple(std), crop, config.target_kind == "points"
            )
    return DataBundle(
        train=streamed["train"],
        val=streamed["val"],
        test=streamed["test"],
        task=config.task,
        classes=classes,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        input_shape=tuple(input_shape),
        source=f"{config.name}:{config.path_text}",
        augment=config.augment,
        fingerprint=file_fingerprint(streamed, classes),
        cache="stream",
        target_kind=config.target_kind,
    )
