"""Parsing of the small textual forms users type: ``28``, ``3x224x224``, ``1,2``, ``same``.

Each parser names the option it parses in its error, so the CLI can report
``--kernel: expected a positive integer, got 'a'`` without a traceback.
"""

from __future__ import annotations

import re

from cnnkit.errors import InputError

_SEP = re.compile(r"\s*[x×,*]\s*")


def parse_ints(option: str, text: str, least: int = 1) -> tuple[int, ...]:
    """``"3x224x224"`` -> (3, 224, 224); every value must be an int >= ``least``."""
    parts = [p for p in _SEP.split(text.strip()) if p != ""]
    if not parts:
        raise InputError(f"{option}: expected a number like 3 or 3x5, got {text!r}")
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise InputError(
                f"{option}: expected {'a positive' if least else 'a non-negative'} integer, "
                f"got {part!r}"
            ) from None
        if value < least:
            what = "a positive integer" if least >= 1 else "a non-negative integer"
            raise InputError(f"{option}: expected {what}, got {value}")
        values.append(value)
    return tuple(values)


def parse_padding(option: str, text: str) -> str | tuple[int, ...]:
    """A padding: a mode name (valid, same, full) or non-negative ints per axis."""
    word = text.strip().lower()
    aliases = {"narrow": "valid", "wide": "full"}
    word = aliases.get(word, word)
    if word in ("valid", "same", "full"):
        return word
    if word and word[0].isalpha():
        raise InputError(
            f"{option}: expected a number or one of valid (narrow), same, full (wide), got {text!r}"
        )
    return parse_ints(option, text, least=0)


def parse_index(option: str, text: str) -> tuple[int, ...]:
    """``"1,2"`` -> (1, 2): a zero-based position in an output grid."""
    return parse_ints(option, text, least=0)
