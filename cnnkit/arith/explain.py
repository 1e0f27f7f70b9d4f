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
    """Say when the stride leaves real input unread (the AlexNet 224 vs 227 confusion)."""
    if not axis.unread:
        return None
    parts = []
    if axis.trailing_unread:
        pads = axis.pad[0] + axis.pad[1]
        remainder = axis.input + pads - span(axis.kernel, axis.dilation)
        smaller = axis.input - remainder % axis.stride
        parts.append(
            f"the last {axis.trailing_unread} input position(s) along {axis_name} are never "
            f"read: in + pad - span = {remainder} is not a multiple of stride {axis.stride}, "
            f"so floor division drops the remainder; inputs {smaller} or "
            f"{smaller + axis.stride} would fit exactly"
        )
    gaps = axis.unread - axis.trailing_unread
    if gaps:
        parts.append(
            f"{gaps} input position(s) along {axis_name} fall between windows "
            f"(stride {axis.stride} > span of the kernel taps)"
        )
    return f"{op}: " + "; ".join(parts)
