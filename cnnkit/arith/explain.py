"""The output-size formula of one axis with the numbers put in, for ``cnnkit conv``.

ASCII only, so it survives any terminal and sits in ``--json`` output unchanged.
"""

from __future__ import annotations

from cnnkit.arith.sizes import Axis, span


def formula(op: str, axis: Axis, ceil_mode: bool = False) -> str:
    """``floor((224 + 2 + 2 - 1*(11-1) - 1) / 4) + 1 = floor(217 / 4) + 1 = 55`` and friends."""
    n, k, s, d = axis.input, axis.kernel, axis.stride, axis.dilation
    lo, hi = axis.pad
    if op == "convtranspose":
        return f"({n}-1)*{s} - 2*{lo} + {d}*({k}-1) + {axis.output_padding} + 1 = {axis.output}"
    numerator = n + lo + hi - span(k, d)
    pads = f"{lo} + {hi}" if lo != hi else f"2*{lo}"
    rounding = "ceil" if ceil_mode else "floor"
    text = (
        f"{rounding}(({n} + {pads} - {d}*({k}-1) - 1) / {s}) + 1 = "
        f"{rounding}({numerator} / {s}) + 1"
    )
    plain = (-(-numerator // s) if ceil_mode else numerator // s) + 1
    if plain != axis.output:
        text += (
            f" = {plain}, minus the last window, which would start in the right padding"
            f" ((out-1)*s = {(plain - 1) * s} >= in + p = {n + lo})"
        )
    return f"{text} = {axis.output}"


def rule(op: str, ceil_mode: bool = False) -> str:
    """The general output-size rule of ``op``, in the notation ``formula`` fills in."""
    if op == "convtranspose":
        return "out = (in-1)*s - 2p + d*(k-1) + output_padding + 1"
    if ceil_mode:
        return (
            "out = ceil((in + 2p - d*(k-1) - 1) / s) + 1, minus 1 if the last window would "
            "start in the right padding"
        )
    return "out = floor((in + pad_before + pad_after - d*(k-1) - 1) / s) + 1"


def unread_warning(op: str, axis_name: str, axis: Axis) -> str | None:
    """Say which real input the layer never reads, and why (the AlexNet 224 vs 227 confusion).

    Two causes are told apart: floor division dropping positions after the last window, and
    positions inside the windows' extent that no tap reads (stride > span, dilation holes).
    """
    if not axis.unread:
        return None
    if op == "convtranspose":
        return (
            f"{op}: {axis.unread} input position(s) along {axis_name} reach no output: "
            f"padding {axis.pad[0]} crops every position they write to"
        )
    parts = []
    if axis.dropped:
        parts.append(_dropped_text(axis_name, axis))
    gaps = axis.unread - axis.dropped
    if gaps:
        parts.append(f"{gaps} input position(s) along {axis_name} {_gap_reason(axis)}")
    return f"{op}: " + "; ".join(parts)


def _dropped_text(axis_name: str, axis: Axis) -> str:
    remainder = axis.input + axis.pad[0] + axis.pad[1] - span(axis.kernel, axis.dilation)
    smaller = axis.input - remainder % axis.stride
    fits = " or ".join(str(v) for v in (smaller, smaller + axis.stride) if v >= 1)
    return (
        f"the last {axis.dropped} input position(s) along {axis_name} are never read: "
        f"in + pad - span = {remainder} is not a multiple of stride {axis.stride}, so floor "
        f"division drops the remainder; inputs {fits} would fit exactly"
    )


def _gap_reason(axis: Axis) -> str:
    extent = span(axis.kernel, axis.dilation)
    if axis.dilation == 1:
        return f"fall between windows (stride {axis.stride} > kernel {axis.kernel})"
    if axis.stride > extent:
        return (
            f"fall between windows or between the taps of the dilated kernel (stride "
            f"{axis.stride} > span {extent}, dilation {axis.dilation})"
        )
    return (
        f"fall in the holes between the taps of the dilated kernel (dilation "
        f"{axis.dilation}), which stride {axis.stride} does not fill"
    )
