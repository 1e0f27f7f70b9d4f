"""Resampling without weights: interpolation (nn.Upsample / F.interpolate) and pixel shuffle.

Upsampling is a fractional stride: each output unit reads a few input positions that depend
on its place in a repeating pattern, so its receptive-field rule gives the spans themselves
(``Resampled``), computed as PyTorch indexes (``cnnkit.arith.resample``). Pixel shuffle moves
channels to space: an output position reads one input position, the geometry of a transposed
convolution with kernel = stride = factor; pixel unshuffle is a window of that size.
"""

from __future__ import annotations

from typing import Any

from cnnkit.arith import resample as rs
from cnnkit.arith.receptive import FieldTooIrregular
from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt, spatial
from cnnkit.layers._kind import (
    RF,
    SAVES_NOTHING,
    Arg,
    Args,
    Counts,
    LayerKind,
    Resampled,
    Shape,
    Window,
    prod,
)
from cnnkit.validation import word

MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear")
RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}  # torch's modes by rank


def scales(value: Any) -> float | tuple[float, ...]:
    """A positive number, or a list of 1-3 of them (one per spatial axis)."""
    number = c.number(0, open_low=True)
    if isinstance(value, list) and 1 <= len(value) <= 3:
        try:
            return tuple(number(v) for v in value)
        except ValueError:
            pass
    try:
        return number(value)
    except ValueError:
        raise ValueError(
            f"expected a positive number or a list of 1-3 of them, got {value!r}"
        ) from None


def _per_axis(value: Any, dims: int, name: str) -> tuple[Any, ...]:
    if not isinstance(value, tuple):
        return (value,) * dims
    if len(value) == 1:
        return value * dims
    if len(value) != dims:
        raise ShapeError(f"{name} has {len(value)} values but the input has {dims} spatial axes")
    return value


def geometry(args: Args, inputs: tuple[Shape, ...]):
    """(channels, input sizes, output sizes, the scale torch indexes with per axis or None,
    align_corners), with every rule torch applies checked here."""
    ch, sp = spatial(inputs[0], "upsample")
    mode, align = args["mode"], args["align_corners"]
    if mode in RANK and RANK[mode] != len(sp):
        raise ShapeError(
            f"mode {mode} takes {RANK[mode]} spatial axes, got input shape {fmt(inputs[0])}"
        )
    if mode == "nearest" and align is not None:
        raise ShapeError("align_corners applies only to the interpolating modes, not nearest")
    given = [key for key in ("size", "scale") if args[key] is not None]
    if len(inputs) == 2:
        if given:
            raise ShapeError(f"with a second input the size is its size; drop {given[0]}")
        _, out = spatial(inputs[1], "upsample's size input")
        if len(out) != len(sp):
            raise ShapeError(f"the size input {fmt(inputs[1])} has another number of axes")
        return ch, sp, out, (None,) * len(sp), bool(align)
    if len(given) != 1:
        raise ShapeError("give exactly one of size and scale (or a second input to match)")
    if args["size"] is not None:
        out = _per_axis(args["size"], len(sp), "size")
        return ch, sp, out, (None,) * len(sp), bool(align)
    factors = _per_axis(args["scale"], len(sp), "scale")
    out = tuple(map(rs.output_size, sp, factors))
    if min(out) < 1:
        raise ShapeError(f"scale {args['scale']} leaves no output of input {fmt(inputs[0])}")
    return ch, sp, out, factors, bool(align)


def upsample_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch, _, out, _, _ = geometry(args, inputs)
    return (ch, *out)


def upsample_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Per axis, the exact span pattern of the positions each unit reads with a non-zero
    weight (the second input, if any, gives only a size)."""
    _, sp, out, factors, align = geometry(args, inputs)
    try:
        spans = tuple(
            rs.axis_span(args["mode"], n, o, f, align) for n, o, f in zip(sp, out, factors)
        )
    except (rs.Ambiguous, FieldTooIrregular) as err:
        return Resampled(None, str(err))
    return Resampled(spans)


def upsample_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """No MACs (torchvision's convention); ops: one multiply-add per tap per output element."""
    n = prod(out)
    taps = rs.TAPS[args["mode"]]
    ops = 0 if taps == 1 else taps ** (len(out) - 1) * n
    return Counts(ops=ops, activations=n)


UPSAMPLE = LayerKind(
    "upsample",
    "Interpolate to a size or by a scale (nn.Upsample, F.interpolate); with a second input "
    "(from: [x, ref]) to the spatial size of ref.",
    (
        Arg("mode", word(MODES), "nearest", (), "nearest, linear, bilinear, bicubic, trilinear"),
        Arg("size", c.optional(c.per_axis(1)), None, (), "output size (int or per axis)"),
        Arg("scale", c.optional(scales), None, ("scale_factor",), "scale factor (or per axis)"),
        Arg("align_corners", c.optional(c.boolean), None, ("align",), "interpolating modes"),
    ),
    upsample_shape,
    upsample_rf,
    upsample_count,
    short="scale",
    aliases=("interpolate", "resize"),
    arity=(1, 2),
    saves=SAVES_NOTHING,
    ops=(
        "ops: none for nearest; one multiply-add per tap per output element: 2^d taps for "
        "linear, bilinear, trilinear, 4^d for bicubic (d spatial axes). MACs 0."
    ),
    builder="cnnkit.model.builders:upsample",
)


def _shuffle_geometry(args: Args, shape: Shape, kind: str) -> tuple[int, Shape]:
    ch, sp = spatial(shape, kind, dims=(2,))
    r = args["factor"]
    if kind == "pixel_shuffle" and ch % (r * r):
        raise ShapeError(
            f"pixel_shuffle by {r} needs channels divisible by {r * r}, got shape {fmt(shape)}"
        )
    if kind == "pixel_unshuffle" and any(n % r for n in sp):
        raise ShapeError(
            f"pixel_unshuffle by {r} needs sizes divisible by {r}, got shape {fmt(shape)}"
        )
    return ch, sp


def pixel_shuffle_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch, sp = _shuffle_geometry(args, inputs[0], "pixel_shuffle")
    r = args["factor"]
    return (ch // (r * r), *(n * r for n in sp))


def pixel_unshuffle_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch, sp = _shuffle_geometry(args, inputs[0], "pixel_unshuffle")
    r = args["factor"]
    return (ch * r * r, *(n // r for n in sp))


def pixel_shuffle_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Output position o reads input position o // r: a transposed conv with k = s = r."""
    r = args["factor"]
    return Window((r, r), (r, r), (0, 0), (1, 1), transposed=True)


def pixel_unshuffle_rf(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Output position o reads input positions o*r .. o*r + r - 1: a window k = s = r."""
    r = args["factor"]
    return Window((r, r), (r, r), (0, 0), (1, 1))


FACTOR = Arg("factor", c.positive_int, aliases=("upscale_factor", "r"), doc="factor r")

PIXEL_SHUFFLE = LayerKind(
    "pixel_shuffle",
    "Rearrange C*r^2 x H x W into C x rH x rW (nn.PixelShuffle; ESPCN's sub-pixel conv).",
    (FACTOR,),
    pixel_shuffle_shape,
    pixel_shuffle_rf,
    short="factor",
    aliases=("depth_to_space",),
    saves=SAVES_NOTHING,
    ops="ops: none (a copy).",
    builder="cnnkit.model.builders:pixel_shuffle",
)

PIXEL_UNSHUFFLE = LayerKind(
    "pixel_unshuffle",
    "Rearrange C x rH x rW into C*r^2 x H x W (nn.PixelUnshuffle), pixel_shuffle's inverse.",
    (Arg("factor", c.positive_int, aliases=("downscale_factor", "r"), doc="factor r"),),
    pixel_unshuffle_shape,
    pixel_unshuffle_rf,
    short="factor",
    aliases=("space_to_depth",),
    saves=SAVES_NOTHING,
    ops="ops: none (a copy).",
    builder="cnnkit.model.builders:pixel_unshuffle",
)

KINDS = (UPSAMPLE, PIXEL_SHUFFLE, PIXEL_UNSHUFFLE)
