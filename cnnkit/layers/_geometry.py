"""Per-axis geometry shared by the sliding-window kinds; sizes come from ``cnnkit.arith.sizes``."""

from __future__ import annotations

from typing import Any

from cnnkit.arith import sizes
from cnnkit.errors import ShapeError
from cnnkit.layers._kind import Args, Shape, Window

Pads = tuple[tuple[int, int], ...]


def spatial(shape: Shape, kind: str, dims: tuple[int, ...] = (1, 2, 3)) -> tuple[int, Shape]:
    """Split ``(C, *spatial)``; refuse shapes the kind cannot take."""
    if len(shape) - 1 not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ShapeError(
            f"{kind} takes (channels, {want} spatial sizes), got input shape {fmt(shape)}"
            + (
                "; it is a vector, so this layer must come before flatten"
                if len(shape) == 1
                else ""
            )
        )
    return shape[0], shape[1:]


def axes(value: Any, dims: int, name: str) -> tuple[int, ...]:
    """Broadcast an int or a 1-element list to every axis; check the length otherwise."""
    if isinstance(value, int):
        return (value,) * dims
    if len(value) == 1:
        return tuple(value) * dims
    if len(value) != dims:
        raise ShapeError(f"{name} has {len(value)} values but the input has {dims} spatial axes")
    return tuple(value)


def conv_pads(args: Args, sp: Shape, k: Shape, s: Shape, d: Shape) -> Pads:
    """(before, after) padding per axis, resolving modes with ``sizes.mode_pad``."""
    pad = args["padding"]
    if isinstance(pad, str):
        return tuple(sizes.mode_pad(pad, n, kk, ss, dd) for n, kk, ss, dd in zip(sp, k, s, d))
    return tuple((p, p) for p in axes(pad, len(sp), "padding"))


def conv_window(args: Args, shape: Shape, kind: str) -> tuple[Shape, Shape, Pads, Shape]:
    """Kernel, stride, padding and dilation per axis of a convolution on ``shape``."""
    _, sp = spatial(shape, kind)
    k = axes(args["kernel"], len(sp), "kernel")
    s = axes(args["stride"], len(sp), "stride")
    d = axes(args.get("dilation", 1), len(sp), "dilation")
    return k, s, conv_pads(args, sp, k, s, d), d


def pool_window(args: Args, shape: Shape, kind: str) -> tuple[Shape, Shape, Shape, Shape]:
    """Kernel, stride (default: the kernel), symmetric padding and dilation of a pooling."""
    _, sp = spatial(shape, kind)
    k = axes(args["kernel"], len(sp), "kernel")
    s = k if args["stride"] is None else axes(args["stride"], len(sp), "stride")
    p = axes(args["padding"], len(sp), "padding")
    d = axes(args.get("dilation", 1), len(sp), "dilation")
    return k, s, p, d


def window(k: Shape, s: Shape, pads: Pads | Shape, d: Shape) -> Window:
    before = tuple(p[0] if isinstance(p, tuple) else p for p in pads)
    return Window(tuple(k), tuple(s), before, tuple(d))


def fmt(shape: Shape) -> str:
    return "x".join(map(str, shape)) if shape else "()"
