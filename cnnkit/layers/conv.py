"""Convolution and transposed convolution in 1-D, 2-D and 3-D (dimension from the input)."""

from __future__ import annotations

from dataclasses import replace

from cnnkit.arith import counts, sizes
from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import axes, conv_window, fmt, spatial, window
from cnnkit.layers._kind import (
    RF,
    SAVES_INPUT,
    Arg,
    Args,
    Counts,
    Kept,
    LayerKind,
    Saved,
    Shape,
    prod,
    widen_channels,
)

KERNEL = Arg("kernel", c.per_axis(1), 3, ("k", "kernel_size"), "kernel size")
STRIDE = Arg("stride", c.per_axis(1), 1, ("s",), "stride")
DILATION = Arg("dilation", c.per_axis(1), 1, ("d",), "dilation")
GROUPS = Arg("groups", c.positive_int, 1, ("g",), "channel groups")
BIAS = Arg("bias", c.boolean, True, (), "add a learned bias per output channel")
OUT = Arg("out", c.positive_int, aliases=("out_channels", "filters", "c"), doc="output channels")


def _check_groups(cin: int, cout: int, groups: int) -> None:
    if cin % groups or cout % groups:
        raise ShapeError(
            f"groups={groups} must divide both the {cin} input and {cout} output channels"
        )


def conv_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    cin, sp = spatial(inputs[0], "conv")
    _check_groups(cin, args["out"], args["groups"])
    k, s, pads, d = conv_window(args, inputs[0], "conv")
    out = tuple(sizes.conv_size(*a) for a in zip(sp, k, s, pads, d))
    return (args["out"], *out)


def conv_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    return window(*conv_window(args, inputs[0], "conv"))


def conv_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """MACs: out * prod(out spatial) * in/groups * prod(kernel); ops add one per output
    element for the bias."""
    cin, _ = spatial(inputs[0], "conv")
    k = axes(args["kernel"], len(out) - 1, "kernel")
    weights = counts.conv_weights(cin, args["out"], k, args["groups"])
    macs = counts.conv_macs(cin, args["out"], k, out[1:], args["groups"])
    bias = args["out"] if args["bias"] else 0
    n = prod(out)
    return Counts(weights + bias, 0, macs, macs + (n if bias else 0), n)


def conv_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input (for the weight gradient); with uneven padding (TensorFlow's SAME at
    stride > 1) the zero-padded copy the convolution reads instead."""
    cin, sp = spatial(inputs[0], "conv")
    _, _, pads, _ = conv_window(args, inputs[0], "conv")
    if all(lo == hi for lo, hi in pads):
        return Saved(inputs=(0,))
    return Saved(new=(Kept(cin * prod(tuple(n + lo + hi for n, (lo, hi) in zip(sp, pads)))),))


CONV = LayerKind(
    "conv",
    "Convolution (nn.Conv1d/2d/3d, chosen by the input's spatial rank). padding: ints or "
    "valid/same/full (same with stride > 1 follows TensorFlow's SAME rule).",
    (
        OUT,
        KERNEL,
        STRIDE,
        Arg("padding", c.padding, 0, ("p",), "zero padding or a mode"),
        DILATION,
        GROUPS,
        BIAS,
    ),
    conv_shape,
    conv_rf,
    conv_count,
    saves=conv_saves,
    short="out",
    aliases=("convolution", "conv1d", "conv2d", "conv3d"),
    ops="ops = MACs + one bias add per output element.",
    builder="cnnkit.model.builders:conv",
    widens=widen_channels,
)


def _transposed_geometry(args: Args, shape: Shape):
    cin, sp = spatial(shape, "convtranspose")
    dims = len(sp)
    k = axes(args["kernel"], dims, "kernel")
    s = axes(args["stride"], dims, "stride")
    p = axes(args["padding"], dims, "padding")
    d = axes(args["dilation"], dims, "dilation")
    op = axes(args["output_padding"], dims, "output_padding")
    return cin, sp, k, s, p, d, op


def transposed_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    cin, sp, k, s, p, d, op = _transposed_geometry(args, inputs[0])
    _check_groups(cin, args["out"], args["groups"])
    return (args["out"], *(sizes.transposed_size(*a) for a in zip(sp, k, s, p, d, op)))


def transposed_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """A transposed conv upsamples: its geometry, flagged so the algebra reads it as a
    fractional stride (output o reads the inputs i with i*s - p + t*d = o)."""
    _, _, k, s, p, d, _ = _transposed_geometry(args, inputs[0])
    return replace(window(k, s, p, d), transposed=True)


def transposed_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """MACs are counted per input pixel (``counts.transposed_macs``); ops add one bias add
    per output element."""
    cin, sp, k, *_ = _transposed_geometry(args, inputs[0])
    weights = counts.conv_weights(args["out"], cin, k, args["groups"])
    macs = counts.transposed_macs(cin, args["out"], k, sp, args["groups"])
    bias = args["out"] if args["bias"] else 0
    n = prod(out)
    return Counts(weights + bias, 0, macs, macs + (n if bias else 0), n)


CONVTRANSPOSE = LayerKind(
    "convtranspose",
    "Transposed convolution (nn.ConvTranspose1d/2d/3d). MACs per input pixel.",
    (
        OUT,
        KERNEL,
        STRIDE,
        Arg("padding", c.per_axis(0), 0, ("p",), "padding"),
        Arg("output_padding", c.per_axis(0), 0, ("op",), "extra output size"),
        DILATION,
        GROUPS,
        BIAS,
    ),
    transposed_shape,
    transposed_rf,
    transposed_count,
    saves=SAVES_INPUT,
    short="out",
    aliases=("deconv", "conv_transpose", "transposed_conv"),
    ops=(
        "MACs are counted per input pixel (counts.transposed_macs); ops add one bias add "
        "per output element."
    ),
    builder="cnnkit.model.builders:convtranspose",
    widens=widen_channels,
)

KINDS = (CONV, CONVTRANSPOSE)
__all__ = ["KINDS", "fmt"]
