"""The layer registry: one explicit table of every layer kind a recipe can use.

Each ``LayerKind`` carries its argument schema and its shape, receptive-field and count
rules (see ``_kind``). The torch builders live in ``cnnkit.model.builders.BUILDERS``, keyed
exactly like ``LAYERS``. Adding a kind: add it to its family module's ``KINDS``, add a
builder, add an oracle test.
"""

from __future__ import annotations

from cnnkit.layers import activation, conv, lenet1998, linear, merge, norm, pool
from cnnkit.layers._kind import (
    REQUIRED,
    RF,
    SEES_ALL,
    Arg,
    ArgError,
    Counts,
    LayerKind,
    Shape,
    Window,
    suggest,
)

_FAMILIES = (conv, pool, linear, norm, activation, merge, lenet1998)

LAYERS: dict[str, LayerKind] = {kind.name: kind for family in _FAMILIES for kind in family.KINDS}

ALIASES: dict[str, str] = {
    alias: kind.name for kind in LAYERS.values() for alias in (kind.name, *kind.aliases)
}


def lookup(name: str) -> LayerKind | None:
    """The kind a recipe word names (canonical name or alias), or None."""
    canonical = ALIASES.get(name)
    return None if canonical is None else LAYERS[canonical]


__all__ = [
    "ALIASES",
    "LAYERS",
    "REQUIRED",
    "RF",
    "SEES_ALL",
    "Arg",
    "ArgError",
    "Counts",
    "LayerKind",
    "Shape",
    "Window",
    "lookup",
    "suggest",
]
