"""Normalisation and regularisation: batch, group, instance and layer norm, local response
norm, dropout, and the training-only drop_path and layer_scale of ConvNeXt-style blocks."""

from __future__ import annotations

from collections.abc import Callable

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import (
    SAVES_INPUT,
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


# --- issue 13 (K2): group, instance and layer norm, drop_path, layer_scale ---------------

_STAT_OPS = (
    "ops per element: 5 for the per-sample statistics and the normalisation (mean, "
    "subtract, square and sum for the variance, multiply by the inverse std) plus 2 "
    "(scale, shift) when affine; unlike bn, the statistics cannot be folded in."
)


def _stat_count(elements: int, affine_params: int, affine: bool, buffers: int = 0) -> Counts:
    """Counts of a norm computing its statistics per sample (``_STAT_OPS``)."""
    ops = (7 if affine else 5) * elements
    return Counts(affine_params if affine else 0, buffers, 0, ops, elements)


def one_of(*words: str) -> Callable[[object], str]:
    """A validator accepting one of ``words`` (case-insensitive)."""

    def check(value: object) -> str:
        if isinstance(value, str) and value.lower() in words:
            return value.lower()
        raise ValueError(f"expected one of {', '.join(words)}, got {value!r}")

    return check


def gn_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch = inputs[0][0]
    if ch % args["groups"]:
        raise ShapeError(f"group norm: {ch} channels are not divisible by {args['groups']} groups")
    return inputs[0]


def gn_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: scale and shift per channel (if affine)."""
    n = prod(out)
    return _stat_count(n, 2 * out[0], args["affine"])


def gn_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """native_group_norm keeps the input and a mean and inverse std per sample and group."""
    return Saved(inputs=(0,), new=(Kept(2 * args["groups"]),))


GROUPNORM = LayerKind(
    "groupnorm",
    "Group normalisation (nn.GroupNorm): statistics per sample over groups of channels.",
    (
        Arg("groups", c.positive_int, 32, ("num_groups", "g"), "channel groups"),
        Arg("eps", c.number(0, None, open_low=True), 1e-5, (), "added to the variance"),
        Arg("affine", c.boolean, True, (), "learn a scale and a shift per channel"),
    ),
    gn_shape,
    count=gn_count,
    saves=gn_saves,
    short="groups",
    aliases=("group_norm", "gn"),
    ops=_STAT_OPS,
    builder="cnnkit.model.builders:groupnorm",
)


def in_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    if not 2 <= len(inputs[0]) <= 4:
        raise ShapeError(
            f"instance norm takes (channels, *spatial) with 1-3 spatial axes, got {fmt(inputs[0])}"
        )
    return inputs[0]


def in_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: scale and shift per channel (if affine); buffers: running mean and variance
    per channel plus the one-element batch counter when tracking (as for bn)."""
    n = prod(out)
    ch = out[0]
    buffers = 2 * ch + 1 if args["track_running_stats"] else 0
    return _stat_count(n, 2 * ch, args["affine"], buffers)


def in_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """torch runs batch_norm on the input viewed as (1, N*C, ...): it keeps the input, a
    mean and inverse std per sample and channel, and the N-fold repeats it builds of the
    weight (if affine) and of the running mean and variance (if tracking)."""
    per_channel = 2 + args["affine"] + 2 * args["track_running_stats"]
    return Saved(inputs=(0,), new=(Kept(per_channel * out[0]),))


INSTANCENORM = LayerKind(
    "instancenorm",
    "Instance normalisation (nn.InstanceNorm1d/2d/3d): statistics per sample and channel.",
    (
        Arg("eps", c.number(0, None, open_low=True), 1e-5, (), "added to the variance"),
        Arg("momentum", c.number(0, 1), 0.1, (), "running-statistics update rate"),
        Arg("affine", c.boolean, False, (), "learn a scale and a shift (off, like torch)"),
        Arg("track_running_stats", c.boolean, False, ("track",), "keep running statistics"),
    ),
    in_shape,
    count=in_count,
    saves=in_saves,
    short="eps",
    aliases=("instance_norm", "in1d", "in2d", "in3d"),
    ops=_STAT_OPS,
    builder="cnnkit.model.builders:instancenorm",
)


def ln_normalised(args: Args, shape: Shape) -> int:
    """Size of the normalised axis: the channels (axis 0) or the last axis."""
    return shape[0] if args["over"] == "channels" else shape[-1]


def ln_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: scale and shift per element of the normalised axis (if affine)."""
    n = prod(out)
    return _stat_count(n, 2 * ln_normalised(args, out), args["affine"])


def ln_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """native_layer_norm keeps its input and a mean and inverse std per normalised vector;
    over channels of a map, the channels-last input is a permuted view that layer_norm makes
    contiguous: a copy of the input, kept instead of it."""
    positions = prod(out) // ln_normalised(args, out)
    stats = Kept(2 * positions)
    if args["over"] == "channels" and len(out) > 1:
        return Saved(new=(Kept(prod(out)), stats))
    return Saved(inputs=(0,), new=(stats,))


LAYERNORM = LayerKind(
    "layernorm",
    "Layer normalisation over the channels at every position (ConvNeXt's LayerNorm2d: "
    "channels-last F.layer_norm), or over the last axis (nn.LayerNorm(C)). eps defaults to "
    "1e-6, ConvNeXt's, not torch's 1e-5.",
    (
        Arg("over", one_of("channels", "last"), "channels", ("dim",), "normalised axis"),
        Arg("eps", c.number(0, None, open_low=True), 1e-6, (), "added to the variance"),
        Arg("affine", c.boolean, True, ("elementwise_affine",), "learn a scale and a shift"),
    ),
    count=ln_count,
    saves=ln_saves,
    short="over",
    aliases=("layer_norm", "ln", "layernorm2d"),
    ops=_STAT_OPS,
    builder="cnnkit.model.builders:layernorm",
)


def drop_path_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """x * mask keeps only the per-sample scaled mask (one element per sample: the mask
    needs no gradient, so the input is not kept); p = 0 is the identity."""
    if args["p"] == 0:
        return Saved(view=True)
    return Saved(new=(Kept(1),))


DROP_PATH = LayerKind(
    "drop_path",
    "Stochastic depth per sample (torchvision's StochasticDepth 'row', timm's DropPath): "
    "zeroes a whole sample with probability p while training; identity in eval.",
    (
        Arg("p", c.number(0, 1), 0.1, ("rate", "drop_prob"), "drop probability"),
        Arg("scale_by_keep", c.boolean, True, (), "divide kept samples by 1 - p"),
    ),
    count=elementwise_ops(1),
    saves=drop_path_saves,
    short="p",
    aliases=("stochastic_depth", "droppath"),
    ops="ops: 1 per element (the mask multiply) in training; none at inference.",
    builder="cnnkit.model.builders:drop_path",
)


def layer_scale_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: one learnable scale per channel; ops: 1 multiply per element."""
    n = prod(out)
    return Counts(out[0], 0, 0, n, n)


LAYER_SCALE = LayerKind(
    "layer_scale",
    "Learnable per-channel scale gamma * x (ConvNeXt's layer_scale, shape (C, 1, 1)).",
    (Arg("init", c.number(), 1e-6, ("init_value", "value"), "initial scale"),),
    count=layer_scale_count,
    saves=SAVES_INPUT,  # gamma * x: the gradient of gamma reads x
    short="init",
    aliases=("layerscale",),
    ops="ops: 1 per element (the multiply).",
    builder="cnnkit.model.builders:layer_scale",
)

KINDS = (BATCHNORM, LRN, DROPOUT, GROUPNORM, INSTANCENORM, LAYERNORM, DROP_PATH, LAYER_SCALE)
