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
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader (or a
    crash) never sees half a file and an old file is replaced only by a complete new one."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cnnkit-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
