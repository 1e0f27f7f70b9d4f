"""Rendering helpers shared by the commands: JSON on stdout, rich on stdout, errors on stderr.

Library code returns data; only the CLI renders, through these functions.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else (the ``--json`` contract)."""
    sys.stdout.write(json.dumps(document, indent=2, default=_jsonable) + "\n")


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
