"""1-D signals for a recipe input ``[C, L]`` (conv1d): from npz, CSV, or the generated ``waves``.

``npz``: arrays ``x`` (``[N, L]`` for one channel, or ``[N, C, L]``) and ``y``. ``csv``: one row
per sample with a header, the label column (``data.label_column``, or ``data.targets`` for
regression) and C*L value columns in file order, channel by channel (channel 0's L values, then
channel 1's). Signals are not resampled: a length or channel count other than the recipe's is
an error naming the file. Each channel is normalised with the train split's mean and std.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.config import DataConfig
from cnnkit.train.data import checks
from cnnkit.train.data.sources import Raw

WAVE_CLASSES = ("sine", "square", "sawtooth")


def generate_waves(config: DataConfig, channels: int, length: int) -> Raw:
    """``data.samples`` seeded waves of three shapes, random frequency (1 to 4 periods) and
    phase, amplitude 1, plus Gaussian noise of standard deviation 0.3; label = the shape."""
    g = torch.Generator().manual_seed(config.seed)
    n = config.samples
    y = torch.randint(0, len(WAVE_CLASSES), (n,), generator=g)
    periods = 1 + 3 * torch.rand(n, channels, 1, generator=g)
    phase = torch.rand(n, channels, 1, generator=g)
    t = torch.arange(length, dtype=torch.float32) / length
    cycle = (periods * t + phase) % 1.0  # position in the period, [0, 1)
    shapes = torch.stack(
        [torch.sin(2 * math.pi * cycle), torch.where(cycle < 0.5, 1.0, -1.0), 2 * cycle - 1]
    )
    x = shapes[y, torch.arange(n)] + 0.3 * torch.randn(n, channels, length, generator=g)
    return Raw(x.float(), y, WAVE_CLASSES)


def _fit(x: np.ndarray, channels: int, length: int, where: str) -> torch.Tensor:
    """``[N, L]`` (one channel) or ``[N, C, L]`` as float32, checked against the recipe."""
    checks.check_pixel_dtype(x, where)
    if x.ndim == 2 and channels == 1:
        x = x[:, None]
    if x.ndim != 3:
        raise DataError(
            f"signals must be [N, L] or [N, C, L], got shape {list(x.shape)}", where=where
        )
    if tuple(x.shape[1:]) != (channels, length):
        raise DataError(
            f"signals are {x.shape[1]} channel(s) of length {x.shape[2]} but the recipe's input "
            f"is [{channels}, {length}]",
            where=where,
        )
    with np.errstate(over="ignore", invalid="ignore"):
        return torch.from_numpy(np.array(x, dtype=np.float32))


def _targets(y: np.ndarray, config: DataConfig, where: str, name: checks.Where) -> tuple:
    from cnnkit.train.data.sources import _labels

    if config.task == "regress":
        targets = checks.target_array(y, where)
        checks.check_targets(targets, where, name)
        return targets, ()
    return _labels(y, where, name)


def read_signal_npz(config: DataConfig, path: str, channels: int, length: int) -> Raw:
    from cnnkit.train.data.sources import _existing, _npz_arrays

    file = _existing(path)
    x, y = _npz_arrays(file)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise DataError(
            f"x and y need one entry per signal, got shapes {list(x.shape)} and {list(y.shape)}",
            where=path,
        )
    signals = _fit(x, channels, length, f"{path}: x")
    checks.check_images(signals, f"{path}: x")
    targets, classes = _targets(y, config, f"{path}: y", checks.index_of)
    return Raw(signals, targets, classes)


def read_signal_csv(config: DataConfig, path: str, channels: int, length: int) -> Raw:
    from cnnkit.train.data.sources import _csv_table, _existing

    file = _existing(path)
    table = _csv_table(file, config)
    wanted = list(config.targets) if config.task == "regress" else [config.label_column]
    values = table.drop(columns=wanted)
    if values.shape[1] != channels * length:
        raise DataError(
            f"{values.shape[1]} value columns, but the recipe's input [{channels}, {length}] "
            f"needs {channels * length} (label + C*L values per row)",
            where=path,
        )
    array = values.to_numpy()
    if array.dtype.kind not in "biuf":
        raise DataError("value columns must be numbers", where=path)
    signals = _fit(array.reshape(-1, channels, length), channels, length, path)
    _complete_rows(signals, path)
    target_values = table[wanted].to_numpy() if config.task == "regress" else table[wanted[0]]
    targets, classes = _targets(np.asarray(target_values), config, path, checks.row_of)
    return Raw(signals, targets, classes)


def _complete_rows(signals: torch.Tensor, where: str) -> None:
    """A short row reads as NaN cells (pandas): say which row, with its file line."""
    bad = ~torch.isfinite(signals.reshape(len(signals), -1)).all(dim=1)
    count, first = checks.count_true(bad)
    if count:
        raise DataError(
            f"{count} row{'s have' if count > 1 else ' has'} missing, NaN or inf values, or "
            f"too few (first: {checks.row_of(first)})",
            where=where,
        )


def read_signals(config: DataConfig, path: str | None, channels: int, length: int) -> Raw:
    if config.name == "waves":
        return generate_waves(config, channels, length)
    readers = {"npz": read_signal_npz, "csv": read_signal_csv}
    if config.name not in readers or path is None:
        raise DataError(
            f"a recipe input [C, L] takes 1-D signals from npz, csv or waves, not {config.name!r}",
            where=config.name,
        )
    return readers[config.name](config, path, channels, length)


def load_signals(
    config: DataConfig,
    input_shape: tuple[int, ...],
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Any:
    """A ``DataBundle`` of ``[N, C, L]`` signals, normalised per channel."""
    from cnnkit.train.data.pipeline import DataBundle, Split, fingerprint, split_raw

    channels, length = input_shape
    if config.augment:
        raise DataError(
            "image augmentations do not apply to 1-D signals; remove data.augment",
            where=config.name,
        )
    paths = config.path if isinstance(config.path, dict) else {"train": config.path}
    raw = read_signals(config, paths["train"], channels, length)
    for split in ("val", "test"):
        if split in paths:
            raw.given[split] = read_signals(config, paths[split], channels, length)
    train, val, test = split_raw(raw, config)
    splits = {"train": train, "val": val, "test": test}
    digest = fingerprint(splits, raw.classes if config.task == "classify" else ())
    if stats is not None:
        mean, std = torch.tensor(stats[0]), torch.tensor(stats[1])
    elif config.normalize:
        mean, std = train.x.mean(dim=(0, 2)), train.x.std(dim=(0, 2)).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)

    def norm(split: Split | None) -> Split | None:
        if split is None:
            return None
        return Split(((split.x - mean[None, :, None]) / std[None, :, None]).float(), split.y)

    return DataBundle(
        train=norm(train),  # type: ignore[arg-type]
        val=norm(val),
        test=norm(test),
        task=config.task,
        classes=raw.classes if config.task == "classify" else (),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        input_shape=tuple(input_shape),
        source=config.name if config.path is None else f"{config.name}:{config.path_text}",
        fingerprint=digest,
    )
