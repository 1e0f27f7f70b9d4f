"""Recipes: YAML -> validated ``Recipe`` with a flat graph of primitive layers (pure Python)."""

from __future__ import annotations

from cnnkit.recipe.builtin import builtin_recipes, find_recipe
from cnnkit.recipe.graph import INPUT, Graph, Node
from cnnkit.recipe.model import External, Recipe, apply_overrides, load_recipe, recipe_from_text

__all__ = [
    "INPUT",
    "External",
    "Graph",
    "Node",
    "Recipe",
    "apply_overrides",
    "builtin_recipes",
    "find_recipe",
    "load_recipe",
    "recipe_from_text",
]
