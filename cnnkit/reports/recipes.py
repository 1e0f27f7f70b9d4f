"""``cnnkit recipes`` as data: one summary per built-in recipe, or one checked recipe.

Pure: parameters come from the analysis, and the ``data:``/``train:`` sections are
validated without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnkit.recipe import Recipe


def recipes_report(
    recipe: Recipe | str | None = None, overrides: Sequence[str] = ()
) -> list[dict[str, Any]] | dict[str, Any]:
    """The ``cnnkit recipes --json`` document: every built-in recipe's summary, or with
    ``recipe`` (a Recipe, a recipe file or a built-in name, ``overrides`` applied) that
    recipe's, after ``check_recipe``."""
    from cnnkit.recipe import builtin_recipes, load_recipe

    if recipe is None:
        return [recipe_summary(load_recipe(path)) for path in builtin_recipes().values()]
    if isinstance(recipe, str):
        from cnnkit.targets import RECIPES, resolve

        recipe = resolve(recipe, accept=RECIPES, overrides=overrides).require_recipe()
    check_recipe(recipe)
    return recipe_summary(recipe)


def check_recipe(recipe: Recipe) -> str | None:
    """Check what ``cnnkit train`` would: the data: and train: sections (so a recipe that
    passes here does not fail later on a typo) and tensors no machine holds. Returns a
    warning when training at ``train.batch_size``, or evaluating at
    ``train.eval_batch_size``, needs more memory than this machine has available."""
    from cnnkit.train.config import check_monitor, check_train_task, parse_data, parse_train

    data = parse_data(recipe.data, recipe.source)
    train = parse_train(recipe.train, recipe.source)
    check_train_task(train, data, recipe.source)
    check_monitor(data, train, recipe.source)
    if recipe.graph is None:
        return None
    return _memory_warning(recipe, train)


def _memory_warning(recipe: Recipe, train: Any) -> str | None:
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
        return None
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
    return f"{message}; cnnkit train would refuse it on this machine" if message else None


def recipe_summary(recipe: Recipe) -> dict[str, Any]:
    """One recipe's row: name, file, input/output, layers, parameters, MACs, description."""
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
