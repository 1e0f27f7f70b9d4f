"""Argument validators: each returns the normalised value or raises ``ValueError`` with the
``expected ..., got ...`` text that the recipe loader puts after the key path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnkit.arith.sizes import PAD_MODES

PAD_ALIASES = {"narrow": "valid", "wide": "full"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def nonneg_int(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def integer(value: Any) -> int:
    if not _is_int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def per_axis(least: int) -> Callable[[Any], int | tuple[int, ...]]:
    """An int for every axis, or a list of 1-3 ints (one per spatial axis)."""
    what = "a positive" if least else "a non-negative"

    def check(value: Any) -> int | tuple[int, ...]:
        if _is_int(value) and value >= least:
            return value
        if (
            isinstance(value, list)
            and 1 <= len(value) <= 3
            and all(_is_int(v) and v >= least for v in value)
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


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def number(low: float | None = None, high: float | None = None, *, open_low: bool = False):
    """A real number in [low, high] (or (low, high] with ``open_low``)."""

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        too_low = low is not None and (value <= low if open_low else value < low)
        if too_low or (high is not None and value > high):
            left = "(" if open_low else "["
            raise ValueError(f"expected a number in {left}{low}, {high}], got {value!r}")
        return float(value)

    return check


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapped


def connection_table(value: Any) -> tuple[tuple[int, ...], ...]:
    """Per output map, the input maps it reads: ``[[0, 1, 2], [1, 2, 3], ...]``."""
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(row, list) and row and all(_is_int(v) and v >= 0 for v in row)
            for row in value
        )
    ):
        for row in value:
            if len(set(row)) != len(row):
                raise ValueError(f"expected distinct input maps per output map, got {row!r}")
        return tuple(tuple(row) for row in value)
    raise ValueError(f"expected a list of non-empty lists of input-map indices, got {value!r}")
