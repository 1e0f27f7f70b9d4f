"""``cnnkit recipes``: list the built-in recipes, or check one recipe file."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def recipes_command(
    recipe: Annotated[
        str | None,
        typer.Argument(
            metavar="RECIPE|NAME",
            help="A recipe file or built-in name to check (default: list all).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """List the built-in recipes (name, input, parameters, description), or validate RECIPE.

    Parameters are trainable parameters from the pure analysis (no torch import).
    """
    from cnnkit.recipe import builtin_recipes, load_recipe

    if recipe is None:
        rows = [_summary(load_recipe(path)) for path in builtin_recipes().values()]
    else:
        from cnnkit.train.config import parse_data, parse_train

        loaded = load_recipe(recipe, set_ or ())
        # The data: and train: sections are checked too, so a recipe that passes here
        # does not fail later in `cnnkit train` on a typo, nor on a model no machine holds.
        parse_data(loaded.data, loaded.source)
        train = parse_train(loaded.train, loaded.source)
        if loaded.graph is not None:
            _check_memory(loaded, train)
        rows = [_summary(loaded)]
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


def _check_memory(recipe: Any, train: Any) -> None:
    """Refuse tensors no machine holds; warn (one stderr line) when training at
    ``train.batch_size``, or evaluating at ``train.eval_batch_size``, needs more memory than
    this machine has available (``train`` would refuse)."""
    import sys

    from cnnkit.analysis.bounds import (
        available_memory,
        check_sizes,
        evaluation_bytes,
        evaluation_message,
        largest_layer,
        memory_message,
        train_estimate,
    )

    check_sizes(recipe)
    have = available_memory()
    if have is None:
        return
    batch = train.batch_size
    memory = train_estimate(recipe, batch, train.optimizer, train.momentum, train.amp)
    message = None
    evaluating = evaluation_bytes(recipe, train.eval_batch_size, memory.weights)
    if memory.total > have.bytes:
        where = largest_layer(recipe, batch, memory.bytes_per_element)
        message = memory_message(memory, have, "train.batch_size", batch, where)
    elif evaluating > have.bytes:
        where = largest_layer(recipe, train.eval_batch_size, 4)
        message = evaluation_message(evaluating, have, train.eval_batch_size, where)
    if message:
        sys.stderr.write(f"warning: {message}; cnnkit train would refuse it on this machine\n")


def _summary(recipe: Any) -> dict[str, Any]:
    from cnnkit.analysis import totals

    counts = totals(recipe.graph) if recipe.graph is not None else None
    external = recipe.external
    return {
        "name": recipe.name,
        "path": recipe.path,
        "input": list(recipe.input_shape),
        "output": list(recipe.graph.output_shape) if recipe.graph is not None else None,
        "layers": len(recipe.graph.nodes) if recipe.graph is not None else None,
        "params": counts.params if counts else None,
        "buffers": counts.buffers if counts else None,
        "macs": counts.macs if counts else None,
        "external": f"{external.library}:{external.name}" if external else None,
        "description": recipe.description,
    }
