"""The ``${...}`` evaluator: a whitelist walk over Python's AST, so a recipe can never run code.

Allowed: numbers, strings, ``True``/``False``/``None``, block arguments by name, arithmetic
(+ - * / // % **) on numbers, comparisons (chained), ``and``/``or``/``not``, ``A if C else B``
and the functions in ``FUNCTIONS``. No attributes, subscripts or other calls. Every integer a
step reaches is held to ``limits.MAX_EXPR_BITS`` (a power is judged before it is computed).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from cnnkit.recipe import limits


class ExprError(ValueError):
    """An expression that cannot be read or evaluated; the message says why."""


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: ``v`` rounded to a multiple of ``divisor``, at least
    ``min_value`` (default ``divisor``) and never more than 10% below ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "make_divisible": make_divisible,
    "min": min,
    "max": max,
    "int": int,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "abs": abs,
}
_ARITH: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
ALLOWED = (
    "numbers, strings, True/False, block arguments, + - * / // % **, comparisons, "
    f"and/or/not, 'a if c else b' and {', '.join(FUNCTIONS)}"
)


def _too_large(base: Any, exponent: Any) -> bool:
    """Whether ``base ** exponent`` could pass ``limits.MAX_EXPR_BITS``, judged before
    computing it (a power tower would otherwise take minutes and gigabytes)."""
    if not isinstance(exponent, int | float):
        return False  # the operator itself reports the type error
    if abs(exponent) > 64:
        return True
    bits = base.bit_length() if isinstance(base, int) else 1
    return isinstance(base, int) and exponent > 0 and (bits - 1) * exponent > limits.MAX_EXPR_BITS


def _checked(value: Any, text: str) -> Any:
    """``value`` if it is bounded (ints within the bit limit) and not complex."""
    if isinstance(value, int) and value.bit_length() > limits.MAX_EXPR_BITS:
        raise ExprError(f"a value in {text!r} is too large")
    if isinstance(value, complex):
        raise ExprError(f"{text!r} gives {value!r}, which is not a number, text or boolean")
    return value


def _number(value: Any, text: str) -> Any:
    if isinstance(value, str) or value is None:
        raise ExprError(f"arithmetic needs numbers, got {value!r} in {text!r}")
    return value


class _Walker:
    """One evaluation: ``lookup`` gives a name's value (and raises ``ExprError`` when it
    has none)."""

    def __init__(self, text: str, lookup: Callable[[str], Any], real: frozenset[str]) -> None:
        self.text = text
        self.lookup = lookup
        self.real = real

    def walk(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"only {ALLOWED} are allowed in ${{...}}, got {self.text!r}")
        return _checked(method(node), self.text)

    def _Expression(self, node: ast.Expression) -> Any:
        return self.walk(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        if node.value is None or isinstance(node.value, int | float | str):
            return node.value
        raise ExprError(f"only {ALLOWED} are allowed in ${{...}}, got {self.text!r}")

    def _Name(self, node: ast.Name) -> Any:
        return self.lookup(node.id)

    def _BinOp(self, node: ast.BinOp) -> Any:
        if type(node.op) not in _ARITH:
            raise ExprError(f"only {ALLOWED} are allowed in ${{...}}, got {self.text!r}")
        left = _number(self.walk(node.left), self.text)
        right = _number(self.walk(node.right), self.text)
        if isinstance(node.op, ast.Pow) and _too_large(left, right):
            raise ExprError(f"exponent {right} is too large in {self.text!r}")
        return _ARITH[type(node.op)](left, right)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        if type(node.op) not in _UNARY:
            raise ExprError(f"only {ALLOWED} are allowed in ${{...}}, got {self.text!r}")
        operand = self.walk(node.operand)
        if not isinstance(node.op, ast.Not):
            _number(operand, self.text)
        return _UNARY[type(node.op)](operand)

    def _Compare(self, node: ast.Compare) -> Any:
        left_node, left = node.left, self.walk(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise ExprError(f"only {ALLOWED} are allowed in ${{...}}, got {self.text!r}")
            right = self.walk(right_node)
            if self.real:
                self._same_units(left_node, left, right_node, right)
            if not _COMPARE[type(op)](left, right):
                return False
            left_node, left = right_node, right
        return True

    def _same_units(self, a: ast.AST, x: Any, b: ast.AST, y: Any) -> None:
        """Refuse comparing a count computed from ``real`` names with a written one."""
        reads = [
            any(isinstance(n, ast.Name) and n.id in self.real for n in ast.walk(t)) for t in (a, b)
        ]
        ints = [isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)]
        if reads[0] != reads[1] and all(ints):
            raise ExprError(
                f"{self.text!r} compares the input's real channel count (after model.width) "
                "with a width as written (before it); scale this recipe through a width "
                "argument of its own instead of model.width"
            )

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:  # Python's short circuit: the deciding operand's value
            value = self.walk(operand)
            if bool(value) is isinstance(node.op, ast.Or):
                return value
        return value

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.walk(node.body) if self.walk(node.test) else self.walk(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExprError(
                f"only the functions {', '.join(FUNCTIONS)} may be called in ${{...}}, "
                f"got {self.text!r}"
            )
        if any(k.arg is None for k in node.keywords):
            raise ExprError(f"no ** arguments in ${{...}}, got {self.text!r}")
        args = [self.walk(a) for a in node.args]
        kwargs = {str(k.arg): self.walk(k.value) for k in node.keywords}
        if name == "round" and len(args) > 1 and isinstance(args[1], int) and args[1] < -64:
            raise ExprError(f"round to {args[1]} digits in {self.text!r}")
        return FUNCTIONS[name](*args, **kwargs)


def evaluate(text: str, lookup: Callable[[str], Any], real: frozenset[str] = frozenset()) -> Any:
    """The value of the expression ``text``; an integer-valued float comes back as an int.
    ``real``: names of counts already scaled by ``model.width``, never compared with
    numbers that are not (only given when the width is not 1)."""
    if len(text) > limits.MAX_EXPR_CHARS:
        raise ExprError(f"an expression may have at most {limits.MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExprError(f"cannot read the expression {text!r}") from None
    try:
        result = _Walker(text, lookup, real).walk(tree)
    except (TypeError, ZeroDivisionError, OverflowError, ValueError, RecursionError) as err:
        if isinstance(err, ExprError):
            raise
        raise ExprError(f"cannot evaluate {text!r}: {err}") from None
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return result


__all__ = ["ALLOWED", "FUNCTIONS", "ExprError", "evaluate", "make_divisible"]
