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

For a convolution or pooling with a padding that does not depend on the stride, the run is
solved in closed form (the output is a floor or ceiling of ``room / stride``), so the input
size costs nothing; what is still visited one by one (paddings, or strides under "same" and
transposed convolution) is bounded by ``MAX_CANDIDATES`` and ``MAX_WORK``, and a search past
them is refused in one line that says what to fix.
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


# Settings (paddings, output paddings, ceil modes; or strides where the padding depends on the
# stride) a search may visit one by one, and those times the residue classes counting one
# solution's unread inputs may take (``sizes.read_positions``). Strides are solved in closed
# form for each padding of a convolution or pooling, so only kernel spans over 10,000 or
# transposed targets over about 200 with a free stride come near them.
MAX_CANDIDATES = 20_000
MAX_WORK = 200_000

Run = tuple[int, int]  # consecutive strides lo..hi


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

    def top(self) -> int:
        """The largest stride searched when the stride is free."""
        if self.op == "convtranspose":
            return self.target + self.extent
        return self.n + 2 * self.extent

    @property
    def per_stride(self) -> bool:
        """The padding depends on the stride ("same", transposed): strides one by one."""
        return self.op == "convtranspose" or self.padding == "same"

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

    def stride_range(self, low: int, high: int) -> tuple[int, int]:
        """The strides to try one by one: for "same", only those with ceil(n/s) == target."""
        if self.padding != "same":
            return low, high
        runs = _clip(_ceil_is(self.n, self.target), low, high)
        return (runs[0][0], high if runs[0][1] is None else runs[0][1]) if runs else (1, 0)

    def candidates(self, low: int, high: int, modes: int) -> int:
        """How many settings the search visits over strides ``low..high``."""
        if self.per_stride:
            low, high = self.stride_range(low, high)
            strides = max(0, high - low + 1)
            if self.op != "convtranspose" or self.output_padding is not None:
                return strides * modes
            # sum over s of max(s, dilation): output paddings below stride or dilation
            below = max(0, min(high, self.dilation) - low + 1)
            above_lo = max(low, self.dilation + 1)
            above = (high + above_lo) * (high - above_lo + 1) // 2 if high >= above_lo else 0
            return below * self.dilation + above
        if self.padding is not None:
            return modes
        pads = 2 * self.extent if self.op == "conv" else self.kernel // 2 + 1
        return pads * modes

    def stride_runs(self, pad: Pad, ceil_mode: bool) -> list[tuple[int, int | None]]:
        """Every stride giving the target with this fixed padding, as runs (None: no end)."""
        if self.op != "conv" and pad[0] > self.kernel // 2:
            return []  # PyTorch's pooling limit
        room = self.n + pad[0] + pad[1] - self.extent  # positions the window can move
        if self.op == "conv" or not ceil_mode:
            return [] if room < 0 else _floor_is(room, self.target - 1)
        if room < 0:  # ceil mode: one window hanging over the padding, once it may start
            return [(1 - room, None)] if self.target == 1 else []
        # ceil mode: out = ceil(room/s) + 1, less one when the last window would start in the
        # right padding, i.e. when ceil(room/s) * s >= n + padding
        limit = self.n + pad[0]
        t = self.target
        kept = _ceil_is(room, t - 1)
        if t > 1:
            kept = _clip(kept, 1, (limit - 1) // (t - 1))
        dropped = _clip(_ceil_is(room, t), -(-limit // t), None)
        return _merge(dropped + kept)

    def unread(self, s: int, pad: Pad) -> int:
        if self.op == "convtranspose":
            return transposed_unread(self.n, self.kernel, s, pad[0], self.dilation, self.target)
        read = read_positions(self.n, self.kernel, s, pad, self.dilation, self.target)[0]
        return self.n - read


def _floor_is(a: int, q: int) -> list[tuple[int, int | None]]:
    """The strides s >= 1 with a // s == q (a >= 0), as at most one run."""
    if q < 0:
        return []
    if q == 0:
        return [(a + 1, None)]
    low, high = a // (q + 1) + 1, a // q
    return [(low, high)] if low <= high else []


def _ceil_is(a: int, q: int) -> list[tuple[int, int | None]]:
    """The strides s >= 1 with ceil(a / s) == q (a >= 0), as at most one run."""
    if a == 0:
        return [(1, None)] if q == 0 else []
    if q <= 0:
        return []
    if q == 1:
        return [(a, None)]
    low, high = -(-a // q), -(-a // (q - 1)) - 1
    return [(low, high)] if low <= high else []


def _clip(
    runs: list[tuple[int, int | None]], low: int, high: int | None
) -> list[tuple[int, int | None]]:
    out = []
    for a, b in runs:
        a = max(a, low)
        b = b if high is None else (high if b is None else min(b, high))
        if b is None or a <= b:
            out.append((a, b))
    return out


def _merge(runs: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Sorted runs with touching ones joined."""
    out: list[tuple[int, int | None]] = []
    for a, b in sorted(runs, key=lambda r: r[0]):
        if out and out[-1][1] is not None and out[-1][1] >= a - 1:
            last = out[-1][1]
            out[-1] = (out[-1][0], None if b is None else max(b, last))
        else:
            out.append((a, b))
    return out


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
    modes = (
        [False]
        if not op.endswith("pool")
        else ([False, True] if ceil_mode is None else [ceil_mode])
    )
    low, high = (stride, stride) if stride is not None else (1, problem.top())
    _check_size(problem, low, high, len(modes))
    hits = _search(problem, modes, low, high)
    open_top = stride is None and (op != "convtranspose" or n == 1)
    found = [
        Solution(
            a,
            None if open_top and b == high else b,
            pad,
            o,
            cm,
            problem.unread(a, pad),
        )
        for (cm, pad, o), runs in hits.items()
        for a, b in runs
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


def _check_size(problem: _Problem, low: int, high: int, modes: int) -> None:
    count = problem.candidates(low, high, modes)
    # an upper bound on the classes one unread count visits (1 without dilation)
    other = problem.n if problem.op == "convtranspose" else problem.kernel
    classes = min(other, problem.dilation)
    if count <= MAX_CANDIDATES and count * classes > MAX_WORK:
        raise InputError(
            f"--target: the search would visit {count:,} settings, each counting unread inputs "
            f"over up to {classes:,} residue classes, more than the limit of {MAX_WORK:,} "
            "steps; give --padding or --stride to narrow it"
        )
    if count > MAX_CANDIDATES:
        fix = "--stride" if problem.per_stride else "--padding"
        if problem.op == "convtranspose" and problem.output_padding is None:
            fix = "--stride or --output-padding"
        raise InputError(
            f"--target: the search would visit {count:,} settings ({RANGES[problem.op]}), more "
            f"than the limit of {MAX_CANDIDATES:,}; give {fix} to narrow it"
        )


def _search(
    problem: _Problem, modes: list[bool], low: int, high: int
) -> dict[tuple[bool, Pad, int], list[Run]]:
    """Stride runs per (ceil mode, padding, output padding) that give the target."""
    hits: dict[tuple[bool, Pad, int], list[Run]] = {}
    if problem.per_stride:  # padding depends on the stride: strides one by one
        first, last = problem.stride_range(low, high)
        for cm in modes:
            for s in range(first, last + 1):
                for out_pad in problem.out_pads(s):
                    for pad in problem.pads(s, out_pad):
                        if problem.output(s, pad, cm, out_pad) == problem.target:
                            _add(hits.setdefault((cm, pad, out_pad), []), s)
        return hits
    for cm in modes:
        for pad in problem.pads(low, 0):
            runs = _clip(problem.stride_runs(pad, cm), low, high)
            if runs:
                hits[(cm, pad, 0)] = [(a, high if b is None else b) for a, b in runs]
    return hits


def _add(runs: list[Run], s: int) -> None:
    """Append stride ``s`` (strides come in increasing order) to its run or a new one."""
    if runs and runs[-1][1] == s - 1:
        runs[-1] = (runs[-1][0], s)
    else:
        runs.append((s, s))


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
