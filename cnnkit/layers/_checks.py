"""Argument validators of layer kinds: the shared value checks of ``cnnkit.validation``
(numbers, integers, booleans: the same rules as the ``train:``/``data:`` sections) plus the
shapes only layer arguments take (per-axis ints, padding modes, connection tables). Each
returns the normalised value or raises ``ValueError`` with the ``expected ..., got ...``
text that the recipe loader puts after the key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnkit.arith.sizes import PAD_MODES
from cnnkit.validation import boolean, is_int, nonneg_int, number, optional, positive_int

PAD_ALIASES = {"narrow": "valid", "wide": "full"}


def per_axis(least: int) -> Callable[[Any], int | tuple[int, ...]]:
    """An int for every axis, or a list of 1-3 ints (one per spatial axis)."""
    what = "a positive" if least else "a non-negative"

    def check(value: Any) -> int | tuple[int, ...]:
        if is_int(value) and value >= least:
            return value
        if (
            isinstance(value, list)
            and 1 <= len(value) <= 3
            and all(is_int(v) and v >= least for v in value)
        ):
            return tuple(value)
        raise ValueError(f"expected {what} integer or a list of 1-3 of them, got {value!r}")

    return check


def padding(value: Any) -> int | tuple[int, ...] | str:
    """Zero padding per side (int or per-axis list) or a mode: valid, same, full."""
    if isinstance(value, str):
        word = PAD_ALIASES.get(value.lower(), value.lower())
        if word in PAD_MODES:
            return word
        raise ValueError(
            f"expected a non-negative integer or one of valid, same, full, got {value!r}"
        )
    try:
        return per_axis(0)(value)
    except ValueError:
        raise ValueError(
            f"expected a non-negative integer, a list of them or one of valid, same, full, "
            f"got {value!r}"
        ) from None


def connection_table(value: Any) -> tuple[tuple[int, ...], ...]:
    """Per output map, the input maps it reads: ``[[0, 1, 2], [1, 2, 3], ...]``."""
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(row, list) and row and all(is_int(v) and v >= 0 for v in row)
            for row in value
        )
    ):
        for row in value:
            if len(set(row)) != len(row):
                raise ValueError(f"expected distinct input maps per output map, got {row!r}")
        return tuple(tuple(row) for row in value)
    raise ValueError(f"expected a list of non-empty lists of input-map indices, got {value!r}")


__all__ = [
    "boolean",
    "connection_table",
    "nonneg_int",
    "number",
    "optional",
    "padding",
    "per_axis",
    "positive_int",
]
