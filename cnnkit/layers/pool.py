"""Max/average pooling, adaptive pooling and global pooling (which also flattens)."""

from __future__ import annotations

from math import gcd

from cnnkit.arith import sizes
from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import axes, pool_window, spatial, window
from cnnkit.layers._kind import (
    INT64,
    RF,
    SAVES_INPUT,
    SAVES_NOTHING,
    SEES_ALL,
    Arg,
    Args,
    Counts,
    Kept,
    LayerKind,
    Saved,
    Shape,
    Window,
    prod,
    saved_rule,
    sees_all,
)

KERNEL = Arg("kernel", c.per_axis(1), aliases=("k", "kernel_size"), doc="window size")
STRIDE = Arg("stride", c.optional(c.per_axis(1)), None, ("s",), "stride (default: the kernel)")
PADDING = Arg("padding", c.per_axis(0), 0, ("p",), "zero padding, at most half the kernel")
CEIL = Arg("ceil_mode", c.boolean, False, ("ceil",), "round the output size up")


def _pool_shape(kind: str):
    def shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
        ch, sp = spatial(inputs[0], kind)
        k, s, p, d = pool_window(args, inputs[0], kind)
        if kind == "avgpool" and len(sp) == 3 and any(n < kk for n, kk in zip(sp, k)):
            raise ShapeError(f"3-D average pooling needs input {sp} at least the kernel {k}")
        out = (sizes.pool_size(*a, ceil_mode=args["ceil_mode"]) for a in zip(sp, k, s, p, d))
        return (ch, *out)

    return shape


def _pool_rf(kind: str):
    def rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
        return window(*pool_window(args, inputs[0], kind))

    return rf


def _pool_count(kind: str):
    def count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
        """ops: one per window element per output element (a compare or an add)."""
        k, *_ = pool_window(args, inputs[0], kind)
        n = prod(out)
        return Counts(ops=n * prod(k), activations=n)

    return count


def max_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input and the argmax of every output element, as int64 whatever the dtype."""
    return Saved(inputs=(0,), new=(Kept(prod(out), dtype=INT64),))


def adaptive_avg_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input, except for output size 1, which PyTorch computes as a mean (nothing)."""
    return Saved() if prod(out[1:]) == 1 else Saved(inputs=(0,))


MAXPOOL = LayerKind(
    "maxpool",
    "Max pooling (nn.MaxPool1d/2d/3d).",
    (KERNEL, STRIDE, PADDING, Arg("dilation", c.per_axis(1), 1, ("d",), "dilation"), CEIL),
    _pool_shape("maxpool"),
    _pool_rf("maxpool"),
    _pool_count("maxpool"),
    saves=max_saves,
    short="kernel",
    aliases=("max_pool", "maxpool1d", "maxpool2d", "maxpool3d"),
    ops="ops: prod(kernel) comparisons per output element.",
    builder="cnnkit.model.builders:maxpool",
)
AVGPOOL = LayerKind(
    "avgpool",
    "Average pooling (nn.AvgPool1d/2d/3d).",
    (
        KERNEL,
        STRIDE,
        PADDING,
        CEIL,
        Arg("count_include_pad", c.boolean, True, (), "divide by the full window"),
    ),
    _pool_shape("avgpool"),
    _pool_rf("avgpool"),
    _pool_count("avgpool"),
    saves=SAVES_INPUT,  # only its shape is read, but the input tensor is what is kept
    short="kernel",
    aliases=("avg_pool", "avgpool1d", "avgpool2d", "avgpool3d"),
    ops="ops: prod(kernel) adds per output element.",
    builder="cnnkit.model.builders:avgpool",
)

OUTPUT = Arg("output", c.per_axis(1), 1, ("size", "output_size"), "output size per axis")


def _adaptive_shape(kind: str):
    def shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
        ch, sp = spatial(inputs[0], kind)
        return (ch, *axes(args["output"], len(sp), "output"))

    return shape


def adaptive_kernel(n: int, o: int) -> int:
    """The largest of the windows floor(i*n/o) .. ceil((i+1)*n/o) - 1, in O(1): with
    n = q*o + r they hold q + 1 positions, or q + 2 where the fraction i*r/o (a multiple of
    g = gcd(n, o) over o, at most (o - g)/o) exceeds 1 - r/o, i.e. once r > g."""
    q, r = divmod(n, o)
    if r == 0:
        return q
    return q + 1 + (r > gcd(n, o))


def adaptive_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Windows of PyTorch's adaptive pooling run from floor(i*n/o) to ceil((i+1)*n/o):
    uniform (exact) when o divides n, otherwise the largest window and the mean stride."""
    _, sp = spatial(inputs[0], "adaptive pooling")
    out = axes(args["output"], len(sp), "output")
    if all(o == 1 for o in out):
        return SEES_ALL
    kernel = tuple(map(adaptive_kernel, sp, out))
    stride = tuple(max(1, n // o) for n, o in zip(sp, out))
    exact = all(n % o == 0 for n, o in zip(sp, out))
    return Window(kernel, stride, (0,) * len(sp), (1,) * len(sp), exact, adaptive=True)


ADAPTIVE_OPS = "ops: every input element is read once (a compare or an add)."


def adaptive_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """Every input element is read once (a compare or an add), whatever the output size."""
    return Counts(ops=prod(inputs[0]), activations=prod(out))


ADAPTIVE_AVGPOOL = LayerKind(
    "adaptive_avgpool",
    "Adaptive average pooling to a fixed output size (nn.AdaptiveAvgPool1d/2d/3d).",
    (OUTPUT,),
    _adaptive_shape("adaptive_avgpool"),
    adaptive_rf,
    adaptive_count,
    saves=adaptive_avg_saves,
    short="output",
    aliases=("adaptiveavgpool", "adaptive_avg_pool"),
    ops=ADAPTIVE_OPS,
    builder="cnnkit.model.builders:adaptive_avgpool",
)
ADAPTIVE_MAXPOOL = LayerKind(
    "adaptive_maxpool",
    "Adaptive max pooling to a fixed output size (nn.AdaptiveMaxPool1d/2d/3d).",
    (OUTPUT,),
    _adaptive_shape("adaptive_maxpool"),
    adaptive_rf,
    adaptive_count,
    saves=max_saves,
    short="output",
    aliases=("adaptivemaxpool", "adaptive_max_pool"),
    ops=ADAPTIVE_OPS,
    builder="cnnkit.model.builders:adaptive_maxpool",
)


def _global_shape(kind: str):
    def shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
        ch, _ = spatial(inputs[0], kind)
        return (ch,)

    return shape


GLOBAL_AVGPOOL = LayerKind(
    "global_avgpool",
    "Mean over all spatial positions, giving a (channels,) vector (pooling + flatten).",
    (),
    _global_shape("global_avgpool"),
    sees_all,
    adaptive_count,
    aliases=("gap", "global_avg_pool"),
    saves=SAVES_NOTHING,  # a mean
    ops="ops: one add per input element.",
    builder="cnnkit.model.builders:global_avgpool",
)
GLOBAL_MAXPOOL = LayerKind(
    "global_maxpool",
    "Max over all spatial positions, giving a (channels,) vector: max-over-time pooling "
    "of text CNNs.",
    (),
    _global_shape("global_maxpool"),
    sees_all,
    adaptive_count,
    aliases=("global_max_pool", "max_over_time"),
    saves=saved_rule((0,), output=True),  # amax keeps its input and its result
    ops="ops: one compare per input element.",
    builder="cnnkit.model.builders:global_maxpool",
)

KINDS = (
    MAXPOOL,
    AVGPOOL,
    ADAPTIVE_AVGPOOL,
    ADAPTIVE_MAXPOOL,
    GLOBAL_AVGPOOL,
    GLOBAL_MAXPOOL,
)
