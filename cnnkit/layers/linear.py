"""Fully connected layers, flatten and embedding: the kinds that change a shape's rank."""

from __future__ import annotations

from typing import Any

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import (
    RF,
    SAVES_INPUT,
    SAVES_VIEW,
    SEES_ALL,
    Arg,
    Args,
    Counts,
    LayerKind,
    Shape,
    pointwise,
    prod,
    sees_all,
    widened,
)
from cnnkit.layers.norm import one_of


def _over_channels(args: Args) -> bool:
    return args["over"] == "channels"


def linear_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    shape = inputs[0]
    if not _over_channels(args) and len(shape) != 1:
        raise ShapeError(
            f"input has shape {fmt(shape)}; linear takes a vector, so add a flatten "
            f"(or global pooling) before it ({prod(shape)} features after flatten), "
            f"or say over: channels to apply it at every position"
        )
    if args["in"] is not None and args["in"] != shape[0]:
        what = "channels" if _over_channels(args) else "features"
        raise ShapeError(
            f"input has {shape[0]} {what} but in_features is {args['in']}; drop 'in' to infer it"
        )
    return (args["out"], *shape[1:])


def linear_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """A vector's every output reads every feature; over channels it reads one position."""
    return pointwise(args, inputs) if _over_channels(args) else SEES_ALL


def linear_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """MACs: in * out (per position over channels, as a 1x1 conv); ops add one bias add
    per output element."""
    bias = args["out"] if args["bias"] else 0
    macs = inputs[0][0] * args["out"] * prod(out[1:])
    bias_ops = prod(out) if args["bias"] else 0
    return Counts(inputs[0][0] * args["out"] + bias, 0, macs, macs + bias_ops, prod(out))


def linear_widens(args: Args, width: float) -> dict[str, Any]:
    """Over channels a linear is a 1x1 conv and widens like one; a vector's keeps its size
    (the classifier's class count)."""
    if not _over_channels(args):
        return dict(args)
    return {**args, "out": widened(args["out"], width)[0], "in": None}


LINEAR = LayerKind(
    "linear",
    "Fully connected layer (nn.Linear); in_features is inferred from the input. over: "
    "channels applies it to the channel vector at every position of a map (a channels-last "
    "nn.Linear, as in ConvNeXt's CNBlock: weight (out, in), not a 1x1 conv's (out, in, 1, 1)).",
    (
        Arg("out", c.positive_int, aliases=("out_features", "units"), doc="output features"),
        Arg("in", c.optional(c.positive_int), None, ("in_features",), "checked if given"),
        Arg("bias", c.boolean, True, (), "add a learned bias"),
        Arg("over", one_of("vector", "channels"), "vector", (), "a vector, or the channels"),
    ),
    linear_shape,
    linear_rf,
    linear_count,
    saves=SAVES_INPUT,
    short="out",
    # Not "dense": that word is the DenseNet structure (recipe/expand.py), which wins.
    aliases=("fc",),
    ops="MACs: in * out (per position over channels); ops add one bias add per output.",
    builder="cnnkit.model.builders:linear",
    widens=linear_widens,
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
