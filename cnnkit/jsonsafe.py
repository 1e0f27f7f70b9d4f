"""JSON that strict parsers accept: NaN and infinities become ``null`` (no torch, no numpy).

Python's ``json`` writes ``NaN``/``Infinity`` by default, which are not JSON: jq, JavaScript
and most other readers reject the whole document. A diverged loss or an undefined metric is
``null`` in everything cnnkit writes as JSON (``--json`` on stdout and ``summary.json``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(document: Any, indent: int | None = 2) -> str:
    """``document`` as JSON text, every non-finite float written as ``null``.

    ``indent=None`` is one compact line (``","`` and ``":"``, no spaces), written by
    ``json``'s C encoder: any indent makes ``json`` use its pure-Python encoder, about twice
    as slow on a big document. Most documents hold only JSON's own types and finite numbers,
    so they are encoded as they are; only one that ``json`` refuses (a NaN, a numpy scalar,
    a set) is walked by ``finite`` first, and encoded again."""
    separators = (",", ":") if indent is None else None
    try:
        return json.dumps(document, indent=indent, separators=separators, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(finite(document), indent=indent, separators=separators, allow_nan=False)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, containers walked."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [finite(item) for item in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return finite(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
