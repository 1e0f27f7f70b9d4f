"""``key.path=value`` overrides (``--set train.lr=0.01``): values are typed as YAML and the
result is validated like the file itself; errors name the ``--set`` that caused them."""

from __future__ import annotations

import re
from typing import Any

from cnnkit.errors import RecipeError
from cnnkit.layers import suggest
from cnnkit.recipe.source import Path, Source, describe, fmt_path, load_value

_PART = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")


def parse_path(text: str, where: str) -> Path:
    """``model.layers[3].conv.out`` -> ("model", "layers", 3, "conv", "out")."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if parts and text[pos] == "." and not text.startswith(".[", pos):
            pos += 1
        m = _PART.match(text, pos)
        if not m:
            raise RecipeError(
                f"cannot read key path {text!r} at {text[pos:]!r} "
                "(expected words joined by dots and [index])",
                where=where,
            )
        parts.append(m.group(1) if m.group(1) else int(m.group(2)))
        pos = m.end()
    if not parts:
        raise RecipeError("empty key path", where=where)
    return tuple(parts)


def apply(data: Any, source: Source, overrides: list[str] | tuple[str, ...]) -> Any:
    """Set each override in ``data`` (in place) and record it in ``source``'s line map."""
    import yaml

    for text in overrides:
        where = f"--set {text}"
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise RecipeError("expected KEY.PATH=VALUE, e.g. train.lr=0.01", where=where)
        path = parse_path(key.strip(), where)
        try:
            value = load_value(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            problem = describe(err)
            raise RecipeError(f"cannot read the value as YAML: {problem}", where=where) from None
        data = _set(data, path, value, where)
        for recorded in [p for p in source.lines if p[: len(path)] == path]:
            del source.lines[recorded]
        for end in range(1, len(path)):  # mappings the override created
            source.lines.setdefault(path[:end], where)
        source.lines[path] = where
    return data


def _set(data: Any, path: Path, value: Any, where: str) -> Any:
    if data is None:
        data = {}
    node = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        here = fmt_path(path[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                raise RecipeError(f"{fmt_path(path[:depth])} is not a list", where=where)
            if part >= len(node):
                raise RecipeError(
                    f"{here}: index out of range (the list has {len(node)} items)", where=where
                )
        else:
            if not isinstance(node, dict):
                raise RecipeError(
                    f"{fmt_path(path[:depth]) or 'the recipe'} is not a mapping", where=where
                )
            if part not in node and not last:
                if isinstance(path[depth + 1], int):
                    raise RecipeError(f"{here}: no key{suggest(part, list(node))}", where=where)
                node[part] = {}  # a new mapping: validation then names any unknown key
        if last:
            node[part] = value
        else:
            node = node[part]
    return data
