"""The special layers of LeCun, Bottou, Bengio & Haffner (1998), "Gradient-based learning
applied to document recognition": trainable subsampling, the partially connected C3
convolution, and the Euclidean RBF output layer. Any recipe may use them."""

from __future__ import annotations

from cnnkit.arith import sizes
from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import axes, spatial, window
from cnnkit.layers._kind import (
    INT64,
    RF,
    Arg,
    Args,
    Counts,
    Kept,
    LayerKind,
    Saved,
    Shape,
    prod,
    sees_all,
)


def _subsample_geometry(args: Args, shape: Shape):
    ch, sp = spatial(shape, "subsample")
    k = axes(args["kernel"], len(sp), "kernel")
    return ch, sp, k


def subsample_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch, sp, k = _subsample_geometry(args, inputs[0])
    return (ch, *(sizes.pool_size(n, kk, kk) for n, kk in zip(sp, k)))


def subsample_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    _, sp, k = _subsample_geometry(args, inputs[0])
    return window(k, k, (0,) * len(sp), (1,) * len(sp))


def subsample_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: one coefficient and one bias per map. MACs: one per output (the sum times
    the coefficient); ops: prod(kernel) - 1 adds, the multiply and the bias add."""
    n = prod(out)
    _, _, k = _subsample_geometry(args, inputs[0])
    return Counts(2 * out[0], 0, n, n * (prod(k) + 1), n)


def subsample_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input (kept by the average pool) and the window sums (kept by the multiply
    with the learned coefficient)."""
    return Saved(inputs=(0,), new=(Kept(prod(out)),))


SUBSAMPLE = LayerKind(
    "subsample",
    "Trainable subsampling (LeNet-5's S2/S4): each non-overlapping window is summed, "
    "multiplied by a learned coefficient per map and shifted by a learned bias per map. "
    "The squashing function is a separate layer (scaled_tanh).",
    (Arg("kernel", c.per_axis(1), 2, ("k",), "window size (= stride)"),),
    subsample_shape,
    subsample_rf,
    subsample_count,
    saves=subsample_saves,
    short="kernel",
    aliases=("trainable_subsampling",),
    ops=(
        "MACs: one per output (the sum times the coefficient); ops: prod(kernel) - 1 adds, "
        "the multiply and the bias add."
    ),
    builder="cnnkit.model.builders:subsample",
    verify_note=(
        "fvcore does not count the elementwise multiply by the coefficient (aten::mul has no "
        "handle); cnnkit counts one multiply-accumulate per output"
    ),
    flop_counter_note=(
        "FlopCounterMode counts only convolutions and matrix products: the average pooling "
        "and the multiply by the coefficient count 0; cnnkit counts one multiply-accumulate "
        "per output"
    ),
)


def _partial_geometry(args: Args, shape: Shape):
    cin, sp = spatial(shape, "partial_conv")
    k = axes(args["kernel"], len(sp), "kernel")
    used = max(max(row) for row in args["table"])
    if used >= cin:
        raise ShapeError(
            f"the connection table reads input map {used}, but the input has {cin} maps"
        )
    return cin, sp, k


def partial_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    _, sp, k = _partial_geometry(args, inputs[0])
    return (len(args["table"]), *(sizes.conv_size(n, kk) for n, kk in zip(sp, k)))


def partial_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    _, sp, k = _partial_geometry(args, inputs[0])
    return window(k, (1,) * len(sp), (0,) * len(sp), (1,) * len(sp))


def partial_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: prod(kernel) weights per (output map, input map) connection in the table,
    plus one bias per output map; MACs likewise per output position."""
    _, _, k = _partial_geometry(args, inputs[0])
    links = sum(len(row) for row in args["table"])
    positions = prod(out[1:])
    bias = len(args["table"]) if args["bias"] else 0
    macs = links * prod(k) * positions
    return Counts(links * prod(k) + bias, 0, macs, macs + bias * positions, prod(out))


def partial_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input, the dense weight assembled from the connected kernels in each forward
    (out x in x prod(kernel), not a parameter) and the two int64 index lists that place
    them; the last two do not grow with the batch."""
    cin, _, k = _partial_geometry(args, inputs[0])
    links = sum(len(row) for row in args["table"])
    dense = Kept(len(args["table"]) * cin * prod(k), per_sample=False)
    return Saved(inputs=(0,), new=(dense, Kept(2 * links, per_sample=False, dtype=INT64)))


PARTIAL_CONV = LayerKind(
    "partial_conv",
    "Convolution in which output map j reads only the input maps listed in table[j] "
    "(LeNet-5's C3, Table I of the paper). Stride 1, no padding.",
    (
        Arg("table", c.connection_table, aliases=("connections",), doc="input maps per output"),
        Arg("kernel", c.per_axis(1), 5, ("k",), "kernel size"),
        Arg("bias", c.boolean, True, (), "a learned bias per output map"),
    ),
    partial_shape,
    partial_rf,
    partial_count,
    aliases=("sparse_conv",),
    saves=partial_saves,
    ops="ops = MACs + one bias add per output element.",
    builder="cnnkit.model.builders:partial_conv",
    verify_note=(
        "fvcore counts the dense convolution the module runs (weights outside the "
        "connection table are zeros but are multiplied); cnnkit counts the table's connections"
    ),
    flop_counter_note=(
        "FlopCounterMode counts the dense aten.convolution the module runs (all out x in "
        "kernels, zeros outside the connection table included); cnnkit counts the table's "
        "connections"
    ),
)


def rbf_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    if len(inputs[0]) != 1:
        raise ShapeError(f"rbf takes a vector; got shape {inputs[0]}, add a flatten first")
    return (args["out"],)


def rbf_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """buffers: out x in fixed prototype entries (not trained). MACs: one squared
    difference accumulated per entry; ops: a subtract and a multiply-add per entry."""
    entries = inputs[0][0] * args["out"]
    return Counts(0, entries, entries, 2 * entries, args["out"])


def rbf_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The differences x_j - w_ij (out x in per sample), kept by the square."""
    return Saved(new=(Kept(inputs[0][0] * args["out"]),))


RBF = LayerKind(
    "rbf",
    "Euclidean radial basis function output (LeNet-5): y_i = sum_j (x_j - w_ij)^2 with "
    "fixed prototypes w of +1/-1 (the paper draws them as 7x12 bitmaps of the characters; "
    "cnnkit draws them at random from the seed). The prototypes are buffers, not parameters.",
    (Arg("out", c.positive_int, aliases=("classes",), doc="number of classes"),),
    rbf_shape,
    sees_all,
    rbf_count,
    saves=rbf_saves,
    short="out",
    aliases=("euclidean_rbf",),
    ops=(
        "MACs: one squared difference accumulated per entry; ops: a subtract and a "
        "multiply-add per entry."
    ),
    builder="cnnkit.model.builders:rbf",
    verify_note=(
        "fvcore has no handle for the squared differences (aten::sub/pow/sum, counted 0); "
        "cnnkit counts one multiply-accumulate per prototype entry"
    ),
    flop_counter_note=(
        "FlopCounterMode counts only convolutions and matrix products: the squared "
        "differences (elementwise sub/pow/sum) count 0; cnnkit counts one multiply-accumulate "
        "per prototype entry"
    ),
)

KINDS = (SUBSAMPLE, PARTIAL_CONV, RBF)
