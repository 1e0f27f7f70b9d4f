"""Recipe -> ``Plan``: the one place where the recipe layer meets training.

It validates the recipe's ``data:`` and ``train:`` sections (errors carry the recipe's
``file:line: key``), and writes the fully resolved recipe that a run folder and its
checkpoints keep, so ``--resume`` and ``cnnkit eval`` rebuild exactly the same model and data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cnnkit.nn.experiment import Plan
from cnnkit.recipe import Recipe, apply_overrides, load_recipe, recipe_from_text
from cnnkit.runconfig import DataConfig, TrainConfig, parse_data, parse_train, to_plain


def load_with_overrides(where: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """``load_recipe`` with ``--set``, where ``--set train.x=..`` works even when the recipe has
    no ``train:`` (or ``data:``) section yet: the missing section starts out empty."""
    recipe = load_recipe(where)
    if not overrides:
        return recipe
    raw = dict(recipe.raw)
    for section in ("data", "train"):
        if raw.get(section) is None and any(o.startswith(f"{section}.") for o in overrides):
            raw[section] = {}
    return apply_overrides(dataclasses.replace(recipe, raw=raw), list(overrides))


def sections(recipe: Recipe) -> tuple[DataConfig, TrainConfig]:
    """The validated ``data:`` and ``train:`` sections (defaults where absent)."""
    return parse_data(recipe.data, recipe.source), parse_train(recipe.train, recipe.source)


def resolved_text(recipe: Recipe, data: DataConfig, train: TrainConfig, note: str) -> str:
    """The recipe as YAML with every data/train default written out."""
    import yaml

    raw: dict[str, Any] = dict(recipe.raw)
    raw["data"], raw["train"] = to_plain(data), to_plain(train)
    body = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100)
    return f"# {note}\n{body}"


def plan_from_recipe(recipe: Recipe, note: str, name: str | None = None) -> Plan:
    """A runnable ``Plan``: validated sections, resolved text, and a builder for the model."""
    from cnnkit.nn.build import build

    data, train = sections(recipe)
    return Plan(
        name=name or recipe.name,
        recipe_text=resolved_text(recipe, data, train, note),
        input_shape=tuple(recipe.input_shape),
        data=data,
        train=train,
        build=lambda: build(recipe),
        source=recipe.source.name,
    )


def recipe_of_run(text: str, where: str) -> Recipe:
    """Read back a resolved recipe stored in a run folder or a checkpoint."""
    return recipe_from_text(text, where)
