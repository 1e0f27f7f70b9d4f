"""Inverse arithmetic: which paddings (and strides) give a wanted output size on one axis.

Searched exhaustively over a finite, stated range, so "no solution" is a proof within it:
padding up to the dilated kernel span minus one ("full" padding; more only adds windows that
read nothing but zeros), pooling padding up to half the kernel (PyTorch's limit), and for a
free stride every stride up to the padded input. For a fixed padding, the strides that give
the target form one run, so each solution reports a stride range.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.arith.sizes import Pad, conv_size, pool_size, read_positions, span, transposed_size
from cnnkit.errors import InputError, ShapeError


@dataclass(frozen=True)
class Solution:
    """Settings that produce the target size. ``stride_max`` None means "and any larger"."""

    stride_min: int
    stride_max: int | None
    padding: Pad
    output_padding: int = 0
    ceil_mode: bool = False
    unread: int = 0  # real input positions that no window reads, at stride_min

    @property
    def symmetric(self) -> bool:
        return self.padding[0] == self.padding[1]

    def to_dict(self) -> dict[str, object]:
        return {
            "stride": self.stride_min,
            "stride_max": self.stride_max,
            "padding": list(self.padding),
            "symmetric": self.symmetric,
            "output_padding": self.output_padding,
            "ceil_mode": self.ceil_mode,
            "unread": self.unread,
        }


def _output(
    op: str, n: int, k: int, s: int, pad: Pad, d: int, ceil_mode: bool, out_pad: int
) -> int | None:
    try:
        if op == "conv":
            return conv_size(n, k, s, pad, d)
        if op == "convtranspose":
            return transposed_size(n, k, s, pad[0], d, out_pad)
        return pool_size(n, k, s, pad[0], d, ceil_mode)
    except ShapeError:
        return None


def solve(
    op: str,
    n: int,
    kernel: int,
    target: int,
    stride: int | None = None,
    dilation: int = 1,
    ceil_mode: bool | None = None,
) -> list[Solution]:
    """All settings in the searched range that give ``target`` on an axis of length ``n``."""
    if target < 1:
        raise InputError(f"--target: expected a positive integer, got {target}")
    extent = span(kernel, dilation)
    if op in ("maxpool", "avgpool"):
        pads = [(p, p) for p in range(kernel // 2 + 1)]
    elif op == "convtranspose":
        pads = [(p, p) for p in range(extent)]
    else:
        pads = [(lo, hi) for lo in range(extent) for hi in (lo, lo + 1) if lo + hi < 2 * extent]
    ceil_modes = (
        [False]
        if op not in ("maxpool", "avgpool")
        else ([False, True] if ceil_mode is None else [ceil_mode])
    )
    if op == "convtranspose":
        # Output grows with the stride once n > 1; with n == 1 the stride does not matter.
        top = (target + 2 * extent) // (n - 1) + 1 if n > 1 else target + 2 * extent
        strides = [stride] if stride else list(range(1, top + 1))
    else:
        strides = [stride] if stride else list(range(1, n + 2 * extent + 1))
    found: list[Solution] = []
    for cm in ceil_modes:
        for pad in pads:
            out_pads = range(max(max(strides), dilation)) if op == "convtranspose" else (0,)
            for op_pad in out_pads:
                run: list[int] = [
                    s
                    for s in strides
                    if _output(op, n, kernel, s, pad, dilation, cm, op_pad) == target
                ]
                if not run:
                    continue
                open_ended = stride is None and run[-1] == strides[-1]
                open_ended = open_ended and (op != "convtranspose" or n == 1)
                s0 = run[0]
                unread = 0
                if op != "convtranspose":
                    unread = n - read_positions(n, kernel, s0, pad, dilation, target)[0]
                found.append(Solution(s0, None if open_ended else run[-1], pad, op_pad, cm, unread))
    # Symmetric paddings first (PyTorch's padding= can express them), then fewest unread.
    found.sort(key=lambda x: (not x.symmetric, x.unread, x.stride_min, x.padding, x.ceil_mode))
    if any(x.symmetric for x in found):
        found = [x for x in found if x.symmetric] + [
            x for x in found if not x.symmetric and not _has_symmetric(found, x)
        ]
    return found


def _has_symmetric(found: list[Solution], x: Solution) -> bool:
    return any(
        y.symmetric and y.stride_min <= x.stride_min and (y.stride_max or 10**9) >= x.stride_min
        for y in found
    )
