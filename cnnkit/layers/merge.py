"""Kinds that join several inputs: elementwise add (residuals) and channel concat."""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import SAVES_NOTHING, Args, Counts, LayerKind, Shape, prod


def add_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    first = inputs[0]
    for other in inputs[1:]:
        if other != first:
            shapes = ", ".join(fmt(s) for s in inputs)
            raise ShapeError(f"cannot add inputs of different shapes: {shapes}")
    return first


def add_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """ops: one add per element per extra input."""
    n = prod(out)
    return Counts(ops=n * (len(inputs) - 1), activations=n)


def concat_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    rest = inputs[0][1:]
    for other in inputs[1:]:
        if other[1:] != rest:
            shapes = ", ".join(fmt(s) for s in inputs)
            raise ShapeError(f"concat joins channels, so all other axes must match; got {shapes}")
    return (sum(s[0] for s in inputs), *rest)


def concat_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """ops: none (a copy)."""
    return Counts(activations=prod(out))


KINDS = (
    LayerKind(
        "add",
        "Elementwise sum of two or more inputs of equal shape (residual connections).",
        (),
        add_shape,
        count=add_count,
        aliases=("sum",),
        arity=(2, None),
        saves=SAVES_NOTHING,
        ops="ops: one add per element per extra input.",
        builder="cnnkit.model.builders:add",
    ),
    LayerKind(
        "concat",
        "Concatenation along the channel (or feature) axis (torch.cat(dim=1)).",
        (),
        concat_shape,
        count=concat_count,
        aliases=("cat", "concatenate"),
        arity=(2, None),
        saves=SAVES_NOTHING,
        ops="ops: none (a copy).",
        builder="cnnkit.model.builders:concat",
    ),
)
