"""Rendering helpers shared by the commands: JSON on stdout, rich on stdout, errors on stderr.

Library code returns data; only the CLI renders, through these functions.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else (the ``--json`` contract).

    NaN and infinities (a diverged loss, an undefined metric) become ``null``: Python's
    ``NaN``/``Infinity`` tokens are not JSON and strict parsers (jq, JavaScript) reject them.
    """
    text = json.dumps(_finite(document), indent=2, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, containers walked."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_finite(item) for item in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _finite(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily for start-up time
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see ``cnnkit.atomic``)."""
    from cnnkit.atomic import write_text

    write_text(path, text)
