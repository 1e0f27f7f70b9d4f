"""Small numeric arrays typed on the command line, or read from a .csv / .npy file.

Forms, from 1-D to 4-D (values split by spaces or commas):

- ``"1 2 3"`` or ``"1,2,3"``: a 1-D list;
- ``"1 2; 3 4"``: rows split by ``;``;
- ``"1 2; 3 4 | 5 6; 7 8"``: channels split by ``|``, C x H x W;
- ``"... | ... || ... | ..."``: filters split by ``||``, P x D x kh x kw;
- a trailing separator marks the rank of a lone item: ``"1 2 3;"`` is 1 x 3,
  ``"1 2; 3 4 |"`` is 1 x 2 x 2, ``"1 2; 3 4 ||"`` is 1 x 1 x 2 x 2;
- a path ending in ``.csv`` (1-D or 2-D) or ``.npy`` (1-D to 4-D).

Values stay Python ints when every token is an integer, so integer convolutions are exact and
print without ``.0``. Every error is an ``InputError`` that names the option and the place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError

Number = int | float
_VALUE_SEP = re.compile(r"\s*,\s*|\s+")
# Bounds on what a worked example may hold, checked before anything large is read: the
# pure-Python convolution is for small arrays (its work limit is ``numeric.MAX_MACS``).
MAX_VALUES = 1_000_000  # values in one array (--x, --w, --bias)
MAX_FILE_BYTES = 32 << 20  # a .csv file
MAX_DIGITS = 64  # digits of one integer value (products stay exact and printable)


@dataclass(frozen=True)
class Array:
    """A rectangular nested list of numbers and its shape (outermost axis first)."""

    values: list[Any]
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)


def shape_text(shape: tuple[int, ...]) -> str:
    """``(2, 3)`` -> ``"2x3"``, the way shapes are typed on the command line."""
    return "x".join(map(str, shape))


def parse_array(option: str, text: str) -> Array:
    """Parse ``text`` (a literal or a .csv/.npy path) given to ``option`` into an Array."""
    stripped = text.strip()
    suffix = Path(stripped).suffix.lower()
    if suffix in (".csv", ".npy"):
        path = Path(stripped).expanduser()
        if not path.is_file():
            raise InputError(f"{option}: file {stripped!r} not found")
        return _read_csv(option, path) if suffix == ".csv" else _read_npy(option, path)
    array = _parse_text(option, stripped)
    _check_count(option, prod(array.shape), "")
    return array


def _check_count(option: str, count: int, where: str) -> None:
    if count > MAX_VALUES:
        raise InputError(
            f"{option}: {where}{count:,} values, more than the {MAX_VALUES:,} a worked example "
            "may hold; use torch.nn.functional.conv2d for large arrays"
        )


def _parse_text(option: str, stripped: str) -> Array:
    if not stripped:
        raise InputError(f'{option}: empty input; expected numbers like "1 2; 3 4"')
    if "||" in stripped:
        body = stripped[:-2] if stripped.endswith("||") else stripped
        filters = [
            _parse_3d(option, f"filter {i}, ", part)
            for i, part in _parts(option, "filter", body, "||")
        ]
        return _stack(option, "", "filter", filters)
    if "|" in stripped:
        return _parse_3d(option, "", stripped)
    if ";" in stripped:
        return _parse_2d(option, "", stripped)
    values = _parse_row(option, "", stripped)
    return Array(values, (len(values),))


def _parts(option: str, what: str, text: str, sep: str) -> list[tuple[int, str]]:
    """Split on ``sep`` into 1-based (number, part) pairs; an empty part is an error."""
    parts = text.split(sep)
    for i, part in enumerate(parts, 1):
        if not part.strip():
            raise InputError(f"{option}: {what} {i} is empty")
    return list(enumerate(parts, 1))


def _parse_3d(option: str, where: str, text: str) -> Array:
    """Channels split by ``|``, each a matrix (a lone row counts as a 1-row matrix)."""
    body = text.strip()
    body = body[:-1] if body.endswith("|") else body
    channels = [
        _parse_2d(option, f"{where}channel {i}, ", part)
        for i, part in _parts(option, f"{where}channel", body, "|")
    ]
    return _stack(option, where, "channel", channels)


def _parse_2d(option: str, where: str, text: str) -> Array:
    """Rows split by ``;`` (one trailing ``;`` allowed); every row must have as many values."""
    body = text.strip()
    body = body[:-1] if body.endswith(";") else body
    rows: list[list[Number]] = []
    for i, row in _parts(option, f"{where}row", body, ";"):
        values = _parse_row(option, f"{where}row {i}, ", row)
        if rows and len(values) != len(rows[0]):
            raise InputError(
                f"{option}: {where}row {i} has {len(values)} values, row 1 has {len(rows[0])}"
            )
        rows.append(values)
    return Array(rows, (len(rows), len(rows[0])))


def _parse_row(option: str, where: str, text: str) -> list[Number]:
    tokens = _VALUE_SEP.split(text.strip())
    return [
        _number(option, f"{where}{'column' if where else 'value'} {j}", tok)
        for j, tok in enumerate(tokens, 1)
    ]


def _number(option: str, where: str, token: str) -> Number:
    """An int when the token is one (exact arithmetic), else a finite float."""
    if token == "":
        raise InputError(f"{option}: {where}: empty value (two separators in a row?)")
    digits = token.lstrip("+-")
    if digits.isdigit() and len(digits) > MAX_DIGITS:
        raise InputError(
            f"{option}: {where}: an integer of {len(digits)} digits (at most {MAX_DIGITS})"
        )
    try:
        return int(token)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise InputError(f"{option}: {where}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{option}: {where}: {token!r} is not a finite number")
    return value


def _stack(option: str, where: str, what: str, items: list[Array]) -> Array:
    """Stack equally shaped arrays along a new first axis; name the first one that differs."""
    first = items[0].shape
    for i, item in enumerate(items, 1):
        if item.shape != first:
            raise InputError(
                f"{option}: {where}{what} {i} is {shape_text(item.shape)}, "
                f"{what} 1 is {shape_text(first)}; every {what} must have the same shape"
            )
    return Array([item.values for item in items], (len(items), *first))


def _read_csv(option: str, path: Path) -> Array:
    """A CSV file: one row is a 1-D list, several rows a matrix; blank lines are skipped."""
    import csv

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{option}: {str(path)!r} is {size:,} bytes, more than the {MAX_FILE_BYTES:,} a "
                "worked example may read"
            )
        with path.open(newline="") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{option}: cannot read {str(path)!r}: {err}") from None
    if not rows:
        raise InputError(f"{option}: {str(path)!r} holds no values")
    _check_count(option, sum(map(len, rows)), f"{path.name} holds ")
    matrix: list[list[Number]] = []
    for i, row in enumerate(rows, 1):
        values = [
            _number(option, f"{path.name} row {i}, column {j}", cell.strip())
            for j, cell in enumerate(row, 1)
        ]
        if matrix and len(values) != len(matrix[0]):
            raise InputError(
                f"{option}: {path.name} row {i} has {len(values)} values, "
                f"row 1 has {len(matrix[0])}"
            )
        matrix.append(values)
    if len(matrix) == 1:
        return Array(matrix[0], (len(matrix[0]),))
    return Array(matrix, (len(matrix), len(matrix[0])))


def _read_npy(option: str, path: Path) -> Array:
    """A NumPy .npy file of 1 to 4 dimensions of real numbers (numpy imported only here)."""
    import numpy as np

    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)  # the header, not the data
        _check_count(option, int(data.size), f"{path.name} holds ")
        data = np.array(data)
    except (OSError, ValueError) as err:
        raise InputError(f"{option}: cannot read {str(path)!r} as a NumPy array: {err}") from None
    if data.dtype.kind not in "biuf":
        raise InputError(f"{option}: {path.name} holds {data.dtype} values, not real numbers")
    if not 1 <= data.ndim <= 4 or data.size == 0:
        raise InputError(
            f"{option}: {path.name} has shape {shape_text(data.shape) or 'scalar'}; "
            "expected 1 to 4 dimensions, none of size 0"
        )
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InputError(f"{option}: {path.name} holds NaN or infinite values")
    values = data.astype(int if data.dtype.kind in "biu" else float).tolist()
    return Array(values, tuple(int(n) for n in data.shape))
