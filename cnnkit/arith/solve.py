"""Inverse arithmetic: which paddings (and strides) give a wanted output size on one axis.

Searched exhaustively over a finite, stated range (``RANGES``), so "no solution" is a proof
within it:

- convolution: padding before 0 .. span - 1 ("full" padding; more only adds windows that read
  nothing but zeros), padding after equal to it or one more (the odd extra pixel goes after,
  as in PyTorch's ``padding='same'`` and TensorFlow's SAME); a free stride runs up to the
  padded input;
- pooling: symmetric padding up to half the kernel (PyTorch's limit), both ceil modes unless
  one is given; a free stride runs up to the padded input;
- transposed convolution: every symmetric padding that leaves an output (PyTorch's limit),
  every output_padding PyTorch allows (smaller than stride or dilation); a free stride runs up
  to the target size plus the kernel span (with one input position the stride does not change
  the size, so a run that reaches the top is open-ended).

A given padding (a number or a mode) or output_padding narrows the search to it. Strides that
give the target with the same settings are reported as runs (``stride_min`` .. ``stride_max``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cnnkit.arith.sizes import (
    Pad,
    conv_size,
    mode_pad,
    pool_size,
    read_positions,
    span,
    transposed_size,
    transposed_unread,
)
from cnnkit.errors import InputError, ShapeError

RANGES = {
    "conv": "padding before up to the kernel span - 1, after the same or one more; "
    "strides up to the padded input",
    "maxpool": "padding up to half the kernel; strides up to the padded input",
    "avgpool": "padding up to half the kernel; strides up to the padded input",
    "convtranspose": "every padding that leaves an output, output_padding below stride or "
    "dilation; strides up to the target plus the kernel span",
}


@dataclass(frozen=True)
class Solution:
    """Settings that produce the target size. ``stride_max`` None means "and any larger"."""

    stride_min: int
    stride_max: int | None
    padding: Pad
    output_padding: int = 0
    ceil_mode: bool = False
    unread: int = 0  # real input positions that no window reads (transposed: reach no output)

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


@dataclass(frozen=True)
class _Problem:
    op: str
    n: int
    kernel: int
    target: int
    dilation: int
    padding: int | str | None  # None: search; an int or a mode name: fixed
    output_padding: int | None

    @property
    def extent(self) -> int:
        return span(self.kernel, self.dilation)

    def output(self, s: int, pad: Pad, ceil_mode: bool, out_pad: int) -> int | None:
        try:
            if self.op == "conv":
                return conv_size(self.n, self.kernel, s, pad, self.dilation)
            if self.op == "convtranspose":
                return transposed_size(self.n, self.kernel, s, pad[0], self.dilation, out_pad)
            return pool_size(self.n, self.kernel, s, pad[0], self.dilation, ceil_mode)
        except ShapeError:
            return None

    def strides(self, stride: int | None) -> list[int]:
        if stride is not None:
            return [stride]
        if self.op == "convtranspose":
            return list(range(1, self.target + self.extent + 1))
        return list(range(1, self.n + 2 * self.extent + 1))

    def out_pads(self, s: int) -> range | tuple[int, ...]:
        if self.op != "convtranspose":
            return (0,)
        if self.output_padding is not None:
            return (self.output_padding,)
        return range(max(s, self.dilation))

    def pads(self, s: int, out_pad: int) -> Iterator[Pad]:
        if isinstance(self.padding, str):
            yield mode_pad(self.padding, self.n, self.kernel, s, self.dilation)
        elif self.padding is not None:
            yield self.padding, self.padding
        elif self.op == "conv":
            for lo in range(self.extent):
                yield lo, lo
                yield lo, lo + 1
        elif self.op == "convtranspose":
            # out = (n-1)s - 2p + span + output_padding: one padding can hit the target.
            twice = (self.n - 1) * s + self.extent + out_pad - self.target
            if twice >= 0 and twice % 2 == 0:
                yield twice // 2, twice // 2
        else:
            for p in range(self.kernel // 2 + 1):
                yield p, p

    def unread(self, s: int, pad: Pad) -> int:
        if self.op == "convtranspose":
            return transposed_unread(self.n, self.kernel, s, pad[0], self.dilation, self.target)
        read = read_positions(self.n, self.kernel, s, pad, self.dilation, self.target)[0]
        return self.n - read


def solve(
    op: str,
    n: int,
    kernel: int,
    target: int,
    stride: int | None = None,
    dilation: int = 1,
    ceil_mode: bool | None = None,
    padding: int | str | None = None,
    output_padding: int | None = None,
) -> list[Solution]:
    """All settings in the searched range that give ``target`` on an axis of length ``n``.

    Symmetric paddings (which ``nn.Conv``'s ``padding=`` can express) come first, then the
    rest; within each, fewest unread inputs first. Nothing in the range is left out.
    """
    if target < 1:
        raise InputError(f"--target: expected a positive integer, got {target}")
    _check_fixed(op, padding, output_padding)
    problem = _Problem(op, n, kernel, target, dilation, padding, output_padding)
    strides = problem.strides(stride)
    modes = (
        [False]
        if not op.endswith("pool")
        else ([False, True] if ceil_mode is None else [ceil_mode])
    )
    hits: dict[tuple[bool, Pad, int], list[int]] = {}
    for cm in modes:
        for s in strides:
            for out_pad in problem.out_pads(s):
                for pad in problem.pads(s, out_pad):
                    if problem.output(s, pad, cm, out_pad) == target:
                        hits.setdefault((cm, pad, out_pad), []).append(s)
    open_top = stride is None and (op != "convtranspose" or n == 1)
    found = [
        Solution(
            run[0],
            None if open_top and run[-1] == strides[-1] else run[-1],
            pad,
            o,
            cm,
            problem.unread(run[0], pad),
        )
        for (cm, pad, o), found_strides in hits.items()
        for run in _runs(found_strides)
    ]
    found.sort(
        key=lambda x: (
            not x.symmetric,
            x.unread,
            x.stride_min,
            x.padding,
            x.output_padding,
            x.ceil_mode,
        )
    )
    return found


def _check_fixed(op: str, padding: int | str | None, output_padding: int | None) -> None:
    if isinstance(padding, str) and op != "conv" and padding != "valid":
        raise InputError(
            f"--padding {padding} is defined for convolution only; give {op} a number or "
            "leave --padding out to search"
        )
    if isinstance(padding, int) and padding < 0:
        raise InputError(f"--padding: expected a non-negative integer, got {padding}")
    if output_padding is not None and op != "convtranspose" and output_padding:
        raise InputError("--output-padding only applies to transposed convolution")


def _runs(strides: list[int]) -> list[list[int]]:
    """Consecutive strides grouped: [1, 2, 3, 6, 7] -> [[1, 2, 3], [6, 7]]."""
    runs: list[list[int]] = []
    for s in strides:
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs
