"""Fully connected layers, flatten and embedding: the kinds that change a shape's rank."""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import (
    SAVES_INPUT,
    SAVES_VIEW,
    Arg,
    Args,
    Counts,
    LayerKind,
    Shape,
    prod,
    sees_all,
)


def linear_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    shape = inputs[0]
    if len(shape) != 1:
        raise ShapeError(
            f"input has shape {fmt(shape)}; linear takes a vector, so add a flatten "
            f"(or global pooling) before it ({prod(shape)} features after flatten)"
        )
    if args["in"] is not None and args["in"] != shape[0]:
        raise ShapeError(
            f"input has {shape[0]} features but in_features is {args['in']}; drop 'in' to infer it"
        )
    return (args["out"],)


def linear_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """MACs: in * out; ops add one bias add per output."""
    macs = inputs[0][0] * args["out"]
    bias = args["out"] if args["bias"] else 0
    return Counts(macs + bias, 0, macs, macs + bias, args["out"])


LINEAR = LayerKind(
    "linear",
    "Fully connected layer (nn.Linear); in_features is inferred from the input.",
    (
        Arg("out", c.positive_int, aliases=("out_features", "units"), doc="output features"),
        Arg("in", c.optional(c.positive_int), None, ("in_features",), "checked if given"),
        Arg("bias", c.boolean, True, (), "add a learned bias"),
    ),
    linear_shape,
    sees_all,
    linear_count,
    saves=SAVES_INPUT,
    short="out",
    # Not "dense": that word is the DenseNet structure (recipe/expand.py), which wins.
    aliases=("fc",),
    ops="MACs: in * out; ops add one bias add per output.",
    builder="cnnkit.model.builders:linear",
)


def flatten_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    return (prod(inputs[0]),)


FLATTEN = LayerKind(
    "flatten",
    "Flatten everything but the batch into one vector (nn.Flatten).",
    (),
    flatten_shape,
    sees_all,
    saves=SAVES_VIEW,
    ops="ops: none.",
    builder="cnnkit.model.builders:flatten",
)


def embedding_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    if len(inputs[0]) != 1:
        raise ShapeError(
            f"embedding takes a sequence of token ids (L,), got shape {fmt(inputs[0])}"
        )
    return (args["dim"], inputs[0][0])


def embedding_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """A table lookup: vocab * dim parameters, no MACs, no ops."""
    return Counts(args["vocab"] * args["dim"], 0, 0, 0, prod(out))


EMBEDDING = LayerKind(
    "embedding",
    "Token embedding (nn.Embedding): (L,) token ids -> (dim, L), channels first so that "
    "1-D convolutions read it directly.",
    (
        Arg("vocab", c.positive_int, aliases=("num_embeddings", "num"), doc="vocabulary size"),
        Arg("dim", c.positive_int, aliases=("embedding_dim",), doc="embedding size"),
        Arg("padding_idx", c.optional(c.nonneg_int), None, (), "id whose vector stays zero"),
    ),
    embedding_shape,
    count=embedding_count,
    saves=SAVES_INPUT,  # the token ids (int64)
    ops="A table lookup: vocab * dim parameters, no MACs, no ops.",
    builder="cnnkit.model.builders:embedding",
)

KINDS = (LINEAR, FLATTEN, EMBEDDING)
