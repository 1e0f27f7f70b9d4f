"""``cnnkit predict``'s inputs as the model's input tensor, prepared exactly as evaluation does.

Images go through the same reader (``sources._images``: PIL decode, convert to L/RGB, bilinear
resize to ``data.resize`` or the recipe input), the same fit, the training statistics stored in
the checkpoint and the same centre crop as ``load_data`` applies to an evaluation split; text
goes through the run's tokenizer and vocabulary. So a file scores the same in ``cnnkit
predict`` as in ``cnnkit eval``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from cnnkit.errors import DataError, InputError
from cnnkit.train.config import DataConfig
from cnnkit.train.data.pipeline import _centre_crop, _fit, _wanted
from cnnkit.train.data.sources import IMAGE_SUFFIXES, Raw, _images


def image_files(inputs: Sequence[str], config: DataConfig) -> list[Path]:
    """Image files from the inputs in the order given: a file as it is, a folder's images
    (recursively, sorted by path), a CSV's ``data.path_column`` (relative to the CSV's
    folder, as ``csv:`` data reads it)."""
    files: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(
                f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            )
            if not found:
                raise DataError(
                    f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found", where=text
                )
            files += found
        elif path.suffix.lower() == ".csv":
            files += _csv_paths(path, config)
        elif not path.exists():
            raise DataError("no such image file or folder", where=text)
        else:
            files.append(path)
    return files


def _csv_paths(file: Path, config: DataConfig) -> list[Path]:
    column = _csv_column(file, config.path_column, "data.path_column", "image paths")
    return [file.parent / p for p in column]


def image_tensor(
    files: Sequence[Path],
    config: DataConfig,
    input_shape: tuple[int, ...],
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """``[N, C, H, W]`` float32, normalised and centre-cropped as an evaluation split is."""
    want = _wanted(config, input_shape)
    x = _images(list(files), want)
    raw = _fit(Raw(x, torch.zeros(len(files), dtype=torch.int64)), config, want, "inputs")
    m, s = torch.tensor(tuple(mean)), torch.tensor(tuple(std))
    x = (raw.x - m[None, :, None, None]) / s[None, :, None, None]
    height, width = input_shape[1:]
    if tuple(x.shape[2:]) != (height, width):
        x = _centre_crop(x, (height, width))
    return x.float().contiguous()


def text_lines(inputs: Sequence[str], config: DataConfig) -> list[str]:
    """Sentences: a ``.txt`` file's non-empty lines, a ``.csv`` file's ``data.text_column``,
    anything else as the sentence itself."""
    lines: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.suffix.lower() == ".txt" and path.is_file():
            lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line]
        elif path.suffix.lower() == ".csv" and path.is_file():
            lines += _csv_column(path, config.text_column, "data.text_column", "sentences")
        else:
            lines.append(text)
    return lines


def _csv_column(file: Path, column: str, key: str, what: str) -> list[str]:
    """One column of a CSV file as text; a missing file, column or cell is one line."""
    import pandas as pd

    if not file.is_file():
        raise DataError("no such CSV file", where=str(file))
    try:
        table = pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read CSV: {' '.join(str(err).split())}", where=str(file)) from None
    if column not in table.columns:
        raise DataError(f"no {column!r} column of {what} ({key})", where=str(file))
    empty = table[column].isna().to_numpy().nonzero()[0]
    if len(empty):
        raise DataError(
            f"column {column!r} has an empty cell (row {empty[0] + 1})", where=str(file)
        )
    return [str(v) for v in table[column]]


def text_tensor(
    lines: Sequence[str], config: DataConfig, input_shape: tuple[int, ...], vocab: Sequence[str]
) -> torch.Tensor:
    """``[N, L]`` token ids with the run's tokenizer and vocabulary (unknown words: 1)."""
    from cnnkit.train.data.text import encode, tokenize

    if not vocab:
        raise InputError("the checkpoint stores no vocabulary: it was not trained on text")
    return encode([tokenize(line, config) for line in lines], vocab, input_shape[0])
