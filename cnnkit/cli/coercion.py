"""Option values without pydantic: a fast path in front of typer's own coercion.

typer (0.2x) coerces every option value through a pydantic ``TypeAdapter``; importing pydantic
and building the adapters costs ~100 ms, more than the whole of ``cnnkit conv``'s work. cnnkit's
options are plain ``str``, ``int``, ``float``, ``bool``, ``Path`` and ``list[str]``, so
:func:`install` puts a small coercer in front of typer's: it converts the values it is sure of
(``"12"`` to 12, a string to itself) and hands anything else (an unusual spelling, an
out-of-range number, a type it does not know) to typer's pydantic path unchanged, so error
messages and edge cases stay exactly typer's. ``tests/test_startup_imports.py`` checks that
the fast path agrees with pydantic on every value it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})


class _Unsure(Exception):
    """The fast path declines a value; typer's own coercion decides."""


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Unsure


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.match(value) and len(value) < 20:
        return int(value)
    raise _Unsure


def _as_float(value: Any) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _FLOAT.match(value) and len(value) < 30:
        return float(value)
    raise _Unsure


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Unsure


def _path_leaf(info: Any) -> Callable[[Any, Any, Any], Any] | None:
    """typer's own path checks (exists=, dir_okay=, ...), given a Path so it needs no pydantic."""
    try:
        from typer._param_types import coerce_cli_path
    except ImportError:  # another typer: its own path coercion decides
        return None

    def as_path(value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise _Unsure
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)

    return as_path


LEAVES: dict[Any, Callable[[Any], Any]] = {
    str: _as_str,
    int: _as_int,
    float: _as_float,
    bool: _as_bool,
}


def fast_leaf(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    """The fast coercer ``(value, param, ctx)`` for one parameter, or None when typer's own
    path must run (a custom parser, clamping, a choice or any type not listed above)."""
    if getattr(info, "parser", None) or getattr(info, "clamp", None):
        return None
    if annotation is Path and not getattr(info, "path_type", None):
        return _path_leaf(info)
    leaf = LEAVES.get(annotation)
    if leaf is None:
        return None
    if info.min is None and info.max is None:
        return lambda value, param, ctx: leaf(value)

    def ranged(value: Any, param: Any, ctx: Any) -> Any:
        number = leaf(value)
        if (info.min is not None and number < info.min) or (
            info.max is not None and number > info.max
        ):
            raise _Unsure  # typer words the range error
        return number

    return ranged


def install() -> bool:
    """Put the fast path in front of typer's coercion; False if this typer has no such hook
    (an older typer uses click's types and needs none; a newer one may have moved it)."""
    try:
        from typer import core
        from typer._coercion import RuntimeParam
    except ImportError:
        return False
    original = getattr(core, "build_runtime_param", None)
    if original is None or getattr(original, "_cnnkit_fast", False):
        return original is not None

    @dataclass(frozen=True)
    class FastRuntimeParam(RuntimeParam):  # type: ignore[misc]
        leaf: Callable[[Any, Any, Any], Any]
        many: bool
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                if self.many:
                    if not isinstance(value, (list, tuple)):
                        raise _Unsure
                    return [self.leaf(item, param, ctx) for item in value]
                return self.leaf(value, param, ctx)
            except _Unsure:
                slow = original(self.descriptor)
                return slow._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        annotation, info = descriptor.annotation, descriptor.parameter_info
        many = get_origin(annotation) is list and len(get_args(annotation)) == 1
        leaf = None
        if descriptor.file_annotation is None:
            leaf = fast_leaf(get_args(annotation)[0] if many else annotation, info)
        if leaf is None:
            return original(descriptor)
        try:
            return FastRuntimeParam(
                parameter_info=info,
                annotation=annotation,
                leaf=leaf,
                many=many,
                descriptor=descriptor,
            )
        except TypeError:  # a typer whose RuntimeParam has other fields: use its own
            return original(descriptor)

    build_runtime_param._cnnkit_fast = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
    return True
