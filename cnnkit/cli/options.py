"""Typer options that several commands declare the same way: one home, so their flags, help
texts and metavars cannot drift apart between commands.

Each is an ``Annotated`` alias used as a command parameter's type, with the default on the
parameter (``as_json: JsonOption = False``). Options whose help differs per command (``--input``,
``--device``, ``--dtype``, ``--csv``) live in their command's module.
"""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
    ),
]
