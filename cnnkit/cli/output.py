"""Rendering helpers shared by the commands: JSON on stdout, rich on stdout, errors on stderr.

Library code returns data; only the CLI renders, through these functions.
"""

from __future__ import annotations

import sys
from typing import Any


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else (the ``--json`` contract).

    NaN and infinities (a diverged loss, an undefined metric) become ``null``: Python's
    ``NaN``/``Infinity`` tokens are not JSON and strict parsers (jq, JavaScript) reject them.
    """
    from cnnkit.jsonsafe import dumps

    sys.stdout.write(dumps(document) + "\n")


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily for start-up time
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_table(out: Any, table: Any) -> None:
    """Print a rich table on ``out`` (every command's tables go through here)."""
    out.print(table)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see ``cnnkit.atomic``)."""
    from cnnkit.atomic import write_text

    write_text(path, text)
