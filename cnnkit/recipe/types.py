"""What the recipe loader (``recipe/model.py``) and the expander (``recipe/expand.py``) both
need: user-defined blocks, the initialisation schemes and the structure words. Both import
this module and neither imports the other back, so the two have no import cycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnkit.layers import suggest
from cnnkit.recipe.source import Path, Source

# Names of the initialisation schemes cnnkit.model.init implements (checked there by a test).
INIT_SCHEMES = (
    "default",
    "torchvision",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_normal",
    "xavier_uniform",
    "normal",
    "orthogonal",
    "zeros",
)

# The structure words of a layer list; no block may take one of these names.
STRUCTURES = ("sequence", "repeat", "residual", "parallel", "dense")


@dataclass(frozen=True)
class Block:
    """A user-defined block: its arguments (None default = required) and its body."""

    name: str
    args: dict[str, Any]
    body: Any
    path: Path


def check_init(value: Any, source: Source, path: Path) -> str:
    """``value`` if it names an initialisation scheme, else an error at ``path``."""
    if value not in INIT_SCHEMES:
        raise source.error(path, f"unknown initialisation{suggest(str(value), INIT_SCHEMES)}")
    return value


__all__ = ["INIT_SCHEMES", "STRUCTURES", "Block", "check_init"]
