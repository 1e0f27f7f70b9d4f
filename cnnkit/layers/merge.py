"""Kinds that join several inputs: elementwise add (residuals), channel concat and the
broadcast product (squeeze-and-excitation gates)."""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import SAVES_NOTHING, Args, Counts, Kept, LayerKind, Saved, Shape, prod


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


def broadcast(first: Shape, other: Shape) -> Shape | None:
    """torch's broadcasting of two per-sample shapes of equal rank (None: they do not)."""
    if len(first) != len(other):
        return None
    out = []
    for a, b in zip(first, other):
        if a != b and 1 not in (a, b):
            return None
        out.append(max(a, b))
    return tuple(out)


def mul_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    """Broadcast of all inputs, left to right; ranks must match (the batch axis leads)."""
    out = inputs[0]
    for other in inputs[1:]:
        joined = broadcast(out, other)
        if joined is None:
            raise ShapeError(
                f"cannot multiply shapes {fmt(out)} and {fmt(other)}: they do not broadcast"
            )
        out = joined
    return out


def mul_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """ops: one multiply per output element per extra input."""
    n = prod(out)
    return Counts(ops=n * (len(inputs) - 1), activations=n)


def mul_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """Each product keeps both its factors (each one's gradient reads the other): the inputs
    and, past two inputs, the running products made on the way."""
    running, made = inputs[0], []
    for other in inputs[1:-1]:
        running = broadcast(running, other) or running
        made.append(Kept(prod(running)))
    return Saved(inputs=tuple(range(len(inputs))), new=tuple(made))


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
    LayerKind(
        "mul",
        "Elementwise product of two or more inputs with torch's broadcasting (a C x H x W "
        "tensor times a C x 1 x 1 gate: squeeze-and-excitation).",
        (),
        mul_shape,
        count=mul_count,
        aliases=("multiply", "product"),
        arity=(2, None),
        saves=mul_saves,
        ops="ops: one multiply per output element per extra input.",
        builder="cnnkit.model.builders:mul",
    ),
)
