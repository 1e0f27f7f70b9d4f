"""User-defined blocks: ``$name`` and ``${expression}`` substitution of block arguments.

Expressions are arithmetic over the block's arguments (+ - * / // % **, parentheses),
evaluated by walking Python's AST with a whitelist, so a recipe can never run code.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

from cnnkit.recipe import limits

_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_NAME = re.compile(r"^\$([A-Za-z_]\w*)$")
_EXPR = re.compile(r"^\$\{(.*)\}$", re.DOTALL)


class SubstitutionError(ValueError):
    """A ``$`` reference that cannot be filled; ``path`` is relative to the block body."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


# Keys whose text values are names: ``$arg`` / ``${expr}`` inside them are filled in place.
NAME_KEYS = frozenset({"name", "id", "names", "shortcut_name"})
_INLINE = re.compile(r"\$\{([^}]*)\}|\$([A-Za-z_]\w*)")


def substitute(data: Any, values: dict[str, Any], path: tuple[str | int, ...] = ()) -> Any:
    """A copy of ``data`` with every ``$arg`` / ``${expr}`` string replaced by its value;
    in names (``name: block$stage-$i``) each reference is replaced by its text."""
    if isinstance(data, dict):
        return {
            k: _name(v, values, (*path, k))
            if k in NAME_KEYS and isinstance(v, str) and not _NAME.match(v)
            else substitute(v, values, (*path, k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute(v, values, (*path, i)) for i, v in enumerate(data)]
    if isinstance(data, str):
        if m := _NAME.match(data):
            return _value(m.group(1), values, path)
        if m := _EXPR.match(data):
            return _evaluate(m.group(1), values, path)
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


def _too_large(base: Any, exponent: Any) -> bool:
    """Whether ``base ** exponent`` could pass ``limits.MAX_EXPR_BITS``, judged before
    computing it (a power tower would otherwise take minutes and gigabytes)."""
    if not isinstance(exponent, int | float):
        return False  # the operator itself reports the type error
    if abs(exponent) > 64:
        return True
    bits = base.bit_length() if isinstance(base, int) else 1
    return isinstance(base, int) and exponent > 0 and (bits - 1) * exponent > limits.MAX_EXPR_BITS


def _evaluate(text: str, values: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    if len(text) > limits.MAX_EXPR_CHARS:
        raise SubstitutionError(
            path, f"an expression may have at most {limits.MAX_EXPR_CHARS} characters"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise SubstitutionError(path, f"cannot read the expression {text!r}") from None

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            return _value(node.id, values, path)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and _too_large(left, right):
                raise SubstitutionError(path, f"exponent {right} is too large in {text!r}")
            result = _OPS[type(node.op)](left, right)
            if isinstance(result, int) and result.bit_length() > limits.MAX_EXPR_BITS:
                raise SubstitutionError(path, f"a value in {text!r} is too large")
            return result
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise SubstitutionError(
            path, f"only arithmetic on block arguments is allowed in ${{...}}, got {text!r}"
        )

    try:
        result = walk(tree)
    except (TypeError, ZeroDivisionError, OverflowError, ValueError) as err:
        raise SubstitutionError(path, f"cannot evaluate {text!r}: {err}") from None
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return result
