"""``cnnkit recipes``: list the built-in recipes, or check one recipe file."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cnnkit.cli.options import DebugOption, JsonOption, SetOption


def recipes_command(
    recipe: Annotated[
        str | None,
        typer.Argument(
            metavar="RECIPE|NAME",
            help="A recipe file or built-in name to check (default: list all).",
        ),
    ] = None,
    set_: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List the built-in recipes (name, input, parameters, description), or validate RECIPE.

    Parameters are trainable parameters from the pure analysis (no torch import).
    """
    from cnnkit.reports.recipes import check_recipe, recipe_summary, recipes_report
    from cnnkit.targets import RECIPES, resolve

    if recipe is None:
        rows = recipes_report()
        assert isinstance(rows, list)
    else:
        loaded = resolve(recipe, accept=RECIPES, overrides=set_ or ()).recipe
        assert loaded is not None
        warning = check_recipe(loaded)
        if warning:
            sys.stderr.write(f"warning: {warning}\n")
        rows = [recipe_summary(loaded)]
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(rows if recipe is None else rows[0])
        return
    from cnnkit.cli.output import console

    out = console()
    width = max(len(r["name"]) for r in rows) if rows else 0
    for r in rows:
        params = f"{r['params']:,}" if r["params"] is not None else r["external"]
        shape = "x".join(map(str, r["input"]))
        out.print(
            f"{r['name']:<{width}}  {shape:<11}  {params:>12} params  {r['description']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
