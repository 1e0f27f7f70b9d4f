"""User-defined blocks: ``$name`` and ``${expression}`` substitution of block arguments.

Expressions (``cnnkit.recipe.expr``) are evaluated by walking Python's AST with a whitelist,
so a recipe can never run code. An item whose ``if:`` is false is left as written: it is
dropped by the expander, so its other expressions are never evaluated (``${c // (t - 1)}``
under ``if: ${t != 1}`` cannot divide by zero).
"""

from __future__ import annotations

import re
from typing import Any

from cnnkit.recipe.expr import ExprError, evaluate

_NAME = re.compile(r"^\$([A-Za-z_]\w*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.DOTALL)


class Real(int):
    """A count computed from ``$in_channels``: it is already the real channel count, so
    ``model.width`` does not scale it again (the expander turns it back into an ``int``)."""


class SubstitutionError(ValueError):
    """A ``$`` reference that cannot be filled; ``path`` is relative to the block body."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


# Keys whose text values are names: ``$arg`` / ``${expr}`` inside them are filled in place.
NAME_KEYS = frozenset({"name", "id", "names", "shortcut_name"})
_INLINE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_]\w*)")


def substitute(
    data: Any, values: dict[str, Any], path: tuple[str | int, ...] = (), width: float = 1.0
) -> Any:
    """A copy of ``data`` with every ``$arg`` / ``${expr}`` string replaced by its value;
    in names (``name: block$stage-$i``) each reference is replaced by its text. ``width``:
    ``model.width``; unless it is 1, a real count is never compared with a written one."""
    if isinstance(data, dict):
        if "if" in data:
            condition = substitute(data["if"], values, (*path, "if"), width)
            if condition is False:
                return {**data, "if": False}  # left out: the rest is never evaluated
            data = {**data, "if": condition}
        return {
            k: _name(v, values, (*path, k))
            if k in NAME_KEYS and isinstance(v, str) and not _NAME.match(v)
            else substitute(v, values, (*path, k), width)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute(v, values, (*path, i), width) for i, v in enumerate(data)]
    if isinstance(data, str):
        if m := _NAME.match(data):
            return _value(m.group(1), values, path)
        if m := _EXPR.match(data):
            return _evaluate(m.group(1), values, path, width)
    return data


def _name(text: str, values: dict[str, Any], path: tuple[str | int, ...]) -> str:
    def fill(m: re.Match[str]) -> str:
        found = _evaluate(m.group(1), values, path) if m.group(1) is not None else None
        return str(found if m.group(1) is not None else _value(m.group(2), values, path))

    return _INLINE.sub(fill, text)


def _value(name: str, values: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    if name not in values:
        from cnnkit.layers import suggest

        raise SubstitutionError(path, f"unknown block argument{suggest(name, list(values))}")
    return values[name]


def _evaluate(
    text: str, values: dict[str, Any], path: tuple[str | int, ...], width: float = 1.0
) -> Any:
    real = False
    scaled = frozenset(k for k, v in values.items() if isinstance(v, Real)) if width != 1 else None

    def lookup(name: str) -> Any:
        nonlocal real
        if name not in values:
            from cnnkit.layers import suggest

            raise ExprError(f"unknown block argument{suggest(name, list(values))}")
        real = real or isinstance(values[name], Real)
        return values[name]

    try:
        result = evaluate(text, lookup, scaled or frozenset())
    except ExprError as err:
        raise SubstitutionError(path, str(err)) from None
    if real and isinstance(result, int) and not isinstance(result, bool):
        return Real(result)  # a count computed from the input's channels stays real
    return result
