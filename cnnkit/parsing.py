"""Parsing of the small textual forms users type: ``28``, ``3x224x224``, ``1,2``, ``same``.

Each parser names the option it parses in its error, so the CLI can report
``--kernel: expected a positive integer, got 'a'`` without a traceback.
"""

from __future__ import annotations

import re

from cnnkit.errors import InputError

_SEP = re.compile(r"\s*[x×,*]\s*")


def parse_ints(
    option: str, text: str, least: int = 1, example: str = "3 or 3x5"
) -> tuple[int, ...]:
    """``"3x224x224"`` -> (3, 224, 224); every value must be an int >= ``least``."""
    parts = [p for p in _SEP.split(text.strip()) if p != ""]
    if not parts:
        raise InputError(f"{option}: expected a number like {example}, got {text!r}")
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


def parse_recipe_input(option: str, text: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A new input for a recipe whose input is ``shape`` (``(C, *spatial)`` or ``(L,)``).

    The full shape, the spatial sizes alone (channels kept), or one size for every spatial
    axis: ``--input 227`` on a 3x224x224 recipe means 3x227x227.
    """
    given = parse_ints(option, text)
    if len(given) == len(shape):
        return given
    if len(given) == len(shape) - 1:
        return (*shape[:1], *given)
    if len(given) == 1 and len(shape) > 2:
        return (shape[0], *given * (len(shape) - 1))
    sizes = "H, HxW or CxHxW" if len(shape) == 3 else "one size per axis, or the full shape"
    raise InputError(
        f"{option}: {text} does not fit the recipe's input {'x'.join(map(str, shape))} "
        f"(give {sizes})"
    )


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


_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BYTES = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_count(option: str, text: str) -> float:
    """A budget such as ``5e6``, ``5M``, ``1.2G`` or ``61706`` (k/M/G/T are powers of 1000)."""
    match = _QUANTITY.match(text)
    suffix = match.group(2).lower() if match else ""
    if not match or suffix not in _SUFFIX:
        raise InputError(f"{option}: expected a number like 5e6, 5M or 1.2G, got {text!r}")
    return float(match.group(1)) * _SUFFIX[suffix]


def parse_bytes(option: str, text: str) -> float:
    """A memory budget: ``512MiB``, ``1.5GB``, ``2G`` (a bare suffix is decimal, like ``GB``)."""
    match = _QUANTITY.match(text)
    suffix = match.group(2).lower() if match else ""
    if match and suffix in _SUFFIX:
        return float(match.group(1)) * _SUFFIX[suffix]
    if not match or suffix not in _BYTES:
        raise InputError(f"{option}: expected a size like 512MiB, 1.5GB or 2G, got {text!r}")
    return float(match.group(1)) * _BYTES[suffix]


def parse_layer_list(option: str, text: str) -> list[tuple[str, dict[str, str]]]:
    """``"conv k=11 s=4; maxpool k=3 s=2"`` -> [("conv", {"k": "11", "s": "4"}), ...].

    Values stay strings: the layer registry types and validates them, so a layer list and
    a recipe give the same errors for the same mistakes.
    """
    layers: list[tuple[str, dict[str, str]]] = []
    for number, item in enumerate(text.split(";"), start=1):
        words = item.split()
        if not words:
            if item.strip() or number < len(text.split(";")):
                raise InputError(f"{option}: item {number} is empty")
            continue
        kind, args = words[0], {}
        if "=" in kind:
            raise InputError(f"{option}: item {number} ({item.strip()!r}) must start with a kind")
        for word in words[1:]:
            key, eq, value = word.partition("=")
            if not eq or not key or not value:
                raise InputError(
                    f"{option}: item {number} ({kind}): expected key=value, got {word!r}"
                )
            if key in args:
                raise InputError(f"{option}: item {number} ({kind}): {key} given twice")
            args[key] = value
        layers.append((kind, args))
    if not layers:
        raise InputError(f"{option}: no layers given")
    return layers
