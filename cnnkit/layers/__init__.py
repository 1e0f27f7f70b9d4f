"""The layer registry: one explicit table of every layer kind a recipe can use.

Each ``LayerKind`` row carries everything about its kind (see ``_kind``): argument schema,
shape, receptive-field, count, ops and saved-for-backward rules, width behaviour, fvcore
note and a lazy ``"cnnkit.model.builders:NAME"`` reference to its torch builder, from which
the torch side derives ``BUILDERS``. Adding a kind: one row in its family module's
``KINDS``, one builder, one oracle test (tests/test_layers_vs_torch.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from cnnkit.layers import (
    activation,
    channel,
    conv,
    lenet1998,
    linear,
    merge,
    norm,
    pool,
    resample,
)
from cnnkit.layers._kind import (
    REQUIRED,
    RF,
    SEES_ALL,
    Arg,
    ArgError,
    Counts,
    LayerKind,
    Resampled,
    Shape,
    Window,
    suggest,
)

_FAMILIES = (conv, pool, linear, norm, activation, merge, channel, resample, lenet1998)


def register(kinds: Iterable[LayerKind]) -> tuple[dict[str, LayerKind], dict[str, str]]:
    """(kinds by name, every recipe word -> canonical name); a word two rows claim, or a row
    that is not a ``LayerKind``, is refused here rather than one silently winning."""
    layers: dict[str, LayerKind] = {}
    aliases: dict[str, str] = {}
    for kind in kinds:
        if not isinstance(kind, LayerKind):
            raise TypeError(f"registry rows must be LayerKind, got {kind!r}")
        for word in (kind.name, *kind.aliases):
            if word in aliases:
                raise ValueError(
                    f"layer kind {kind.name!r}: {word!r} already names {aliases[word]!r}"
                )
            aliases[word] = kind.name
        layers[kind.name] = kind
    return layers, aliases


LAYERS, ALIASES = register(kind for family in _FAMILIES for kind in family.KINDS)


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
    "Resampled",
    "Shape",
    "Window",
    "lookup",
    "register",
    "suggest",
]
