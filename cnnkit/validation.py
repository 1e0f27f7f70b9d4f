"""The value checks of every recipe section: layer arguments (``cnnkit.layers``), the model
section (``cnnkit.recipe.model``) and the ``train:``/``data:`` sections
(``cnnkit.train.config``). One rule per kind of value, so a number that one section takes
is never refused, or silently taken as NaN, by another.

Each check returns the normalised value or raises ``ValueError("expected ..., got ...")``;
the caller puts ``file:line: key.path:`` before it, so every error stays one line.

The number rule: an int or a float (not a bool), finite (NaN and infinities are refused: a
NaN slope or epsilon would make every output NaN without an error), inside its bounds, and
of magnitude at most ``NUMBER_LIMIT`` when no upper bound is given.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from typing import Any

Check = Callable[[Any], Any]

SEED_LIMIT = 2**63  # torch.manual_seed overflows past 2**64; NumPy and torch both take these
NUMBER_LIMIT = 1e6  # far past any real setting, and safe in float32 (a 60-digit lr was an
# internal "cannot be converted" error)


def fail(expected: str, value: Any) -> ValueError:
    """The house error text: ``expected <what>, got <value>``."""
    return ValueError(f"expected {expected}, got {value!r}")


def is_int(value: Any) -> bool:
    """An integer that is not a bool (YAML's ``true`` is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(least: int = 0, below: int | None = None) -> Check:
    """An integer >= ``least`` (0: non-negative, 1 or more: positive) and < ``below``."""

    def check(value: Any) -> int:
        if not is_int(value) or value < least or (below is not None and value >= below):
            what = "a positive integer" if least >= 1 else "a non-negative integer"
            if below is not None:
                power = below & (below - 1) == 0
                what += f" below 2^{below.bit_length() - 1}" if power else f" up to {below - 1:,}"
            raise fail(what, value)
        return value

    return check


def positive_int(value: Any) -> int:
    return integer(1)(value)


def nonneg_int(value: Any) -> int:
    return integer(0)(value)


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Check:
    """A finite real number in [low, high] (each end open with ``open_low``/``open_high``;
    None: unbounded on that side, but at most ``NUMBER_LIMIT`` in magnitude)."""

    def check(value: Any) -> float:
        real = isinstance(value, int | float) and not isinstance(value, bool)
        ok = real and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if open_low else value >= low
        if ok and high is not None:
            ok = value < high if open_high else value <= high
        # Past the limit (on the side a lower bound leaves open): the message states it.
        over = real and high is None and (value if low is not None else abs(value)) > NUMBER_LIMIT
        if not ok or over:
            raise fail(_describe(low, high, open_low, open_high, over), value)
        return float(value)

    return check


def _describe(low, high, open_low: bool, open_high: bool, over_limit: bool) -> str:
    """What a number check expects, in words (train's messages, which users already see)."""
    if high is not None and low == 0 and open_low and not open_high:
        return f"a positive number up to {high:g}"
    if high is not None:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        lowest = "-inf" if low is None else f"{low:g}"
        return f"a number in {left}{lowest}, {high:g}{right}"
    if low is None:
        return f"a number of magnitude up to {NUMBER_LIMIT:g}" if over_limit else "a number"
    if low == 0:
        what = "a positive number" if open_low else "a non-negative number"
    else:
        what = f"a number {'>' if open_low else '>='} {low:g}"
    return f"{what} up to {NUMBER_LIMIT:g}" if over_limit else what


def probability(value: Any) -> float:
    """A number in [0, 1]."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise fail("a probability in [0, 1]", value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail("true or false", value)
    return value


def optional(check: Check) -> Check:
    """``check``, or None when the value is None (YAML's ``null``/``~``)."""

    def wrapped(value: Any) -> Any:
        return None if value is None else check(value)

    return wrapped


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise fail("a non-empty string", value)
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def word(choices: tuple[str, ...], prefix: str | None = None) -> Check:
    """One of ``choices`` (or any word starting with ``prefix``, e.g. ``torchvision:``)."""

    def check(value: Any) -> str:
        if isinstance(value, str) and (value in choices or (prefix and value.startswith(prefix))):
            return value
        listed = ", ".join(choices) + (f", {prefix}NAME" if prefix else "")
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        raise ValueError(f"expected one of {listed}, got {value!r}{hint}")

    return check


__all__ = [
    "NUMBER_LIMIT",
    "SEED_LIMIT",
    "Check",
    "boolean",
    "did_you_mean",
    "fail",
    "integer",
    "is_int",
    "nonneg_int",
    "number",
    "optional",
    "positive_int",
    "probability",
    "text",
    "word",
]
