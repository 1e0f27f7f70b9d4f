"""Normalisation and regularisation: batch norm, local response norm, dropout."""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import (
    Arg,
    Args,
    Counts,
    Kept,
    LayerKind,
    Saved,
    Shape,
    elementwise_ops,
    prod,
)


def bn_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    if len(inputs[0]) > 4:
        raise ShapeError(f"batch norm takes up to 3 spatial axes, got {fmt(inputs[0])}")
    return inputs[0]


def bn_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: scale and shift per channel (if affine). buffers: running mean and variance
    per channel plus PyTorch's one-element batch counter. ops: 2 per element (scale, shift),
    the inference cost once the statistics are folded in."""
    ch = out[0]
    n = prod(out)
    return Counts(2 * ch if args["affine"] else 0, 2 * ch + 1, 0, 2 * n, n)


def bn_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input and the batch mean and inverse std per channel (the running statistics
    are buffers, counted with the weights)."""
    return Saved(inputs=(0,), new=(Kept(2 * out[0], per_sample=False),))


BATCHNORM = LayerKind(
    "bn",
    "Batch normalisation (nn.BatchNorm1d/2d/3d over the channel axis).",
    (
        Arg("eps", c.number(0, None, open_low=True), 1e-5, (), "added to the variance"),
        Arg("momentum", c.number(0, 1), 0.1, (), "running-statistics update rate"),
        Arg("affine", c.boolean, True, (), "learn a scale and a shift"),
    ),
    bn_shape,
    count=bn_count,
    saves=bn_saves,
    short="eps",
    aliases=("batchnorm", "batch_norm", "bn1d", "bn2d", "bn3d"),
    ops="ops: 2 per element (scale, shift), the inference cost once the statistics are folded in.",
    builder="cnnkit.model.builders:bn",
)


def lrn_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    if len(inputs[0]) < 2:
        raise ShapeError(f"local response norm takes (channels, *spatial), got {fmt(inputs[0])}")
    return inputs[0]


def lrn_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """ops per element: ``size`` multiply-adds for the sum of squares, then scale, add,
    power and divide (4)."""
    n = prod(out)
    return Counts(ops=(args["size"] + 4) * n, activations=n)


def lrn_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """torch's local_response_norm is composed of ops: it keeps the input, the squares
    zero-padded across channels (C + size - 1 maps, read by an average pool), and the
    denominator before and after the power (one input size each)."""
    ch, *sp = inputs[0]
    padded = Kept((ch + args["size"] - 1) * prod(tuple(sp)))
    return Saved(inputs=(0,), new=(padded, Kept(2 * prod(inputs[0]))))


LRN = LayerKind(
    "lrn",
    "Local response normalisation across channels (AlexNet's, nn.LocalResponseNorm).",
    (
        Arg("size", c.positive_int, 5, ("n",), "neighbouring channels"),
        Arg("alpha", c.number(), 1e-4, (), "scale"),
        Arg("beta", c.number(), 0.75, (), "exponent"),
        Arg("k", c.number(), 1.0, ("bias",), "additive constant"),
    ),
    lrn_shape,
    count=lrn_count,
    saves=lrn_saves,
    short="size",
    aliases=("local_response_norm",),
    ops=(
        "ops per element: size multiply-adds for the sum of squares, then scale, add, power "
        "and divide (4)."
    ),
    builder="cnnkit.model.builders:lrn",
)


def dropout_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The scaled keep-mask, one element per input element in the activation dtype (what
    PyTorch keeps on CPU; CUDA's fused kernel keeps a 1-byte bool mask); p = 0 passes the
    input through."""
    if args["p"] == 0:
        return Saved(view=True)
    return Saved(new=(Kept(prod(inputs[0])),) if args["p"] < 1 else ())


DROPOUT = LayerKind(
    "dropout",
    "Dropout (nn.Dropout): zeroes elements with probability p while training.",
    (Arg("p", c.number(0, 1), 0.5, ("rate",), "drop probability"),),
    count=elementwise_ops(0),
    short="p",
    saves=dropout_saves,
    ops="ops: none (identity at inference).",
    builder="cnnkit.model.builders:dropout",
)

KINDS = (BATCHNORM, LRN, DROPOUT)
