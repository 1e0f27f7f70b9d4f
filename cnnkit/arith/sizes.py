"""Output-size rules of convolution, transposed convolution and pooling, one axis at a time.

These are PyTorch's rules exactly (floor division, ``ceil_mode``, ``output_padding``), written on
plain ints so that the CLI, the recipe shape rules and the receptive-field algebra share one
source of truth. Nothing here imports torch; the tests use torch as the oracle.

Conventions: ``pad`` is a ``(before, after)`` pair of zero-padding on one axis; a dilated kernel
of size ``k`` and dilation ``d`` spans ``d * (k - 1) + 1`` input positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd
from typing import Literal

from cnnkit.errors import InputError, ShapeError

Op = Literal["conv", "convtranspose", "maxpool", "avgpool"]
OPS: tuple[str, ...] = ("conv", "convtranspose", "maxpool", "avgpool")
PAD_MODES: tuple[str, ...] = ("valid", "same", "full")
Pad = tuple[int, int]
# Residue classes the unread-input counts may visit one by one (each costs O(1)); a stride
# and dilation that need more (huge sizes with almost coprime steps) are refused.
MAX_RESIDUE_CLASSES = 10_000


def span(kernel: int, dilation: int = 1) -> int:
    """Input positions one dilated kernel window covers."""
    return dilation * (kernel - 1) + 1


def conv_size(n: int, kernel: int, stride: int = 1, pad: Pad = (0, 0), dilation: int = 1) -> int:
    """Output length of a convolution (PyTorch's floor rule).

    Raises ShapeError when the dilated kernel does not fit in the padded input.
    """
    padded = n + pad[0] + pad[1]
    extent = span(kernel, dilation)
    if extent > padded:
        raise ShapeError(
            f"kernel spans {extent} positions but the padded input has only {padded} "
            f"({n} + padding {pad[0]}+{pad[1]})"
        )
    return (padded - extent) // stride + 1


def pool_size(
    n: int,
    kernel: int,
    stride: int,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max/avg pooling, with PyTorch's ``ceil_mode`` rule.

    In ceil mode the last window is kept only if it starts inside the input or its left
    padding; PyTorch drops it when it would start in the right padding.
    """
    if padding > kernel // 2:
        raise ShapeError(
            f"padding {padding} is more than half the kernel {kernel}: PyTorch's pooling "
            f"allows at most {kernel // 2}"
        )
    extent = span(kernel, dilation)
    # PyTorch's pooling_output_shape: floor division (toward -inf) with stride-1 added in
    # ceil mode; a window may then hang over the right padding, but may not start in it.
    numerator = n + 2 * padding - extent + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"pooling window spans {extent} positions but the padded input has only "
            f"{n + 2 * padding}"
        )
    return out


def transposed_size(
    n: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Output length of a transposed convolution (``ConvTranspose``), PyTorch's rule."""
    if output_padding >= stride and output_padding >= dilation:
        raise ShapeError(
            f"output_padding {output_padding} must be smaller than either stride ({stride}) "
            f"or dilation ({dilation})"
        )
    out = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ShapeError(
            f"output size would be {out}: padding {padding} removes more than the "
            f"transposed convolution produces"
        )
    return out


def same_pad(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pad:
    """Padding for "same" output, ``ceil(n / stride)``; the odd extra pixel goes after.

    With stride 1 this is PyTorch's ``padding='same'`` split; with larger strides it is
    TensorFlow's SAME rule, which PyTorch's ``padding='same'`` refuses.
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + span(kernel, dilation) - n, 0)
    return total // 2, total - total // 2


def mode_pad(mode: str, n: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pad:
    """Padding implied by a named mode: valid (narrow), same, full (wide)."""
    if mode == "valid":
        return 0, 0
    if mode == "same":
        return same_pad(n, kernel, stride, dilation)
    if mode == "full":
        full = span(kernel, dilation) - 1
        return full, full
    raise InputError(f"unknown padding mode {mode!r}; expected a number or one of {PAD_MODES}")


def read_positions(
    n: int, kernel: int, stride: int, pad: Pad, dilation: int, out: int
) -> tuple[int, int]:
    """(how many of the ``n`` real input positions some window reads, the last one read).

    The last position is -1 when no window reads any real input. The taps read positions
    ``i*stride - pad + j*dilation``; they are counted by residue class, in time
    ``min(out, dilation/g, kernel, stride/g)`` (g = gcd(stride, dilation)), not ``out * kernel``.
    """
    g = gcd(stride, dilation)
    by_output = min(out, dilation // g)
    by_tap = min(kernel, stride // g)
    _check_classes(min(by_output, by_tap), stride, dilation, "the windows read")
    if by_output <= by_tap:
        return _sumset(-pad[0], stride, out, dilation, kernel, n)
    return _sumset(-pad[0], dilation, kernel, stride, out, n)


def _check_classes(classes: int, stride: int, dilation: int, what: str) -> None:
    if classes > MAX_RESIDUE_CLASSES:
        raise InputError(
            f"--stride {stride} with --dilation {dilation}: counting the input positions {what} "
            f"takes {classes:,} residue classes, more than the limit of "
            f"{MAX_RESIDUE_CLASSES:,} (stride and dilation share too small a factor for this "
            "input size)"
        )


def _sumset(
    offset: int, a_step: int, a_count: int, b_step: int, b_count: int, n: int
) -> tuple[int, int]:
    """Distinct positions ``offset + i*a_step + j*b_step`` (``i < a_count``, ``j < b_count``)
    inside ``[0, n-1]``: (how many, the largest or -1).

    The ``i`` of one class modulo ``b_step/g`` land on one residue modulo ``b_step`` (distinct
    classes on distinct residues), where they cover an evenly spaced run of intervals.
    """
    g = gcd(a_step, b_step)
    period = b_step // g
    total, last = 0, -1
    for i0 in range(min(a_count, period)):
        r, m0 = (offset + i0 * a_step) % b_step, (offset + i0 * a_step) // b_step
        count, top = _covered(
            m0, (a_count - 1 - i0) // period + 1, a_step // g, b_count, 0, (n - 1 - r) // b_step
        )
        if count:
            total, last = total + count, max(last, r + b_step * top)
    return total, last


def _covered(start: int, count: int, step: int, length: int, lo: int, hi: int) -> tuple[int, int]:
    """Of the integers in the ``count`` intervals ``[start + t*step, start + t*step + length-1]``:
    (how many lie in ``[lo, hi]``, the largest of them), in O(1)."""
    if count <= 0 or length <= 0 or hi < lo:
        return 0, lo - 1
    if length >= step:  # the intervals touch or overlap: one run
        count, length = 1, (count - 1) * step + length
        step = length

    def upto(x: int) -> int:  # covered integers <= x
        if x < start:
            return 0
        q, r = divmod(x - start, step)
        return count * length if q >= count else q * length + min(r + 1, length)

    covered = upto(hi) - upto(lo - 1)
    if covered == 0:
        return 0, lo - 1
    q, r = divmod(hi - start, step)
    if q >= count:
        return covered, start + (count - 1) * step + length - 1
    return covered, hi if r < length else start + q * step + length - 1


def dropped_positions(
    n: int, kernel: int, stride: int, pad: Pad, dilation: int, out: int, ceil_mode: bool = False
) -> int:
    """Real input positions after the end of the last window: what floor division discards.

    Positions inside the windows' extent that no tap reads (dilation holes, stride > span) are
    not counted here. In ceil mode a window covers the remainder, so nothing is dropped; a
    position after the last kept window then lies in a gap (stride > span).
    """
    if ceil_mode:
        return 0
    end = (out - 1) * stride + span(kernel, dilation) - 1 - pad[0]
    return min(n, max(0, n - 1 - end))


def transposed_unread(
    n: int, kernel: int, stride: int, padding: int, dilation: int, out: int
) -> int:
    """Input positions of a transposed convolution that reach no output: every position they
    write to is cropped by ``padding`` (possible once padding exceeds the kernel overlap).

    Input ``i`` writes to ``i*stride - padding + j*dilation``. When the stride divides the
    dilation, the inputs each tap reaches form an evenly spaced run of intervals (O(1));
    otherwise the inputs are counted by class modulo ``dilation/g``, O(1) each.
    """
    g = gcd(stride, dilation)
    sp, dp = stride // g, dilation // g
    if sp == 1:  # tap j reaches the inputs [ceil(p/s) - j*dp, floor((p+out-1)/s) - j*dp]
        first, last = -(-padding // stride), (padding + out - 1) // stride
        start = first - (kernel - 1) * dp
        return n - _covered(start, kernel, dp, last - first + 1, 0, n - 1)[0]
    _check_classes(min(n, dp), stride, dilation, "that reach the output")
    reached = 0
    for i0 in range(min(n, dp)):
        c = i0 * stride - padding
        r, m0 = c % dilation, c // dilation
        top = (out - 1 - r) // dilation  # taps land on r + dilation*M, M in [0, top]
        if top < 0:
            continue
        # i = i0 + t*dp reaches when m0 + t*sp .. m0 + t*sp + kernel - 1 meets [0, top]
        low = max(0, -(-(1 - kernel - m0) // sp))
        high = min((n - 1 - i0) // dp, (top - m0) // sp)
        reached += max(0, high - low + 1)
    return n - reached


@dataclass(frozen=True)
class Axis:
    """One spatial axis of a layer: its parameters, its output and what the stride left unread."""

    input: int
    kernel: int
    stride: int
    dilation: int
    pad: Pad
    output: int
    output_padding: int = 0
    trailing_unread: int = 0  # unread real input positions at the end, after the last one read
    unread: int = 0  # real input positions no window reads at all (includes trailing_unread)
    dropped: int = 0  # of the trailing ones, those after the last window (floor division)


@dataclass(frozen=True)
class Layer:
    """The geometry of one conv / transposed conv / pooling layer over all spatial axes."""

    op: str
    axes: tuple[Axis, ...]
    ceil_mode: bool = False
    padding_mode: str | None = None  # "valid" | "same" | "full" when a mode was asked for
    notes: tuple[str, ...] = field(default=())

    @property
    def input(self) -> tuple[int, ...]:
        return tuple(a.input for a in self.axes)

    @property
    def output(self) -> tuple[int, ...]:
        return tuple(a.output for a in self.axes)


PadSpec = int | str | tuple[int, int]


def window_axis(
    n: int, kernel: int, stride: int, pad: Pad, dilation: int, out: int, ceil_mode: bool = False
) -> Axis:
    """The ``Axis`` of a conv or pooling window with its unread-input counts filled in."""
    read, last = read_positions(n, kernel, stride, pad, dilation, out)
    dropped = dropped_positions(n, kernel, stride, pad, dilation, out, ceil_mode)
    return Axis(n, kernel, stride, dilation, pad, out, 0, n - 1 - last, n - read, dropped)


def _per_axis(name: str, value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) == 1:
        values = values * dims
    if len(values) != dims:
        raise InputError(f"--{name} has {len(values)} values but the input has {dims} dimensions")
    return values


def layer(
    op: str,
    input: tuple[int, ...],
    kernel: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: PadSpec | tuple[PadSpec, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    output_padding: int | tuple[int, ...] = 0,
    ceil_mode: bool = False,
) -> Layer:
    """Compute a layer's geometry on the spatial ``input`` shape (1, 2 or 3 axes).

    ``stride`` defaults to 1 for convolutions and to the kernel for pooling, as in PyTorch.
    ``padding`` is an int, a per-axis tuple, or a mode name ("valid", "same", "full").
    """
    if op not in OPS:
        raise InputError(f"unknown layer {op!r}; expected one of {', '.join(OPS)}")
    dims = len(input)
    if not 1 <= dims <= 3:
        raise InputError(f"expected 1, 2 or 3 spatial dimensions, got {dims}")
    ks = _per_axis("kernel", kernel, dims)
    if stride is None:
        stride = ks if op in ("maxpool", "avgpool") else 1
    ss = _per_axis("stride", stride, dims)
    ds = _per_axis("dilation", dilation, dims)
    ops = _per_axis("output-padding", output_padding, dims)
    _check_layer(op, input, ks, ss, ds, ops)
    mode: str | None = None
    notes: list[str] = []
    if isinstance(padding, str):
        mode = padding
        pads, notes = _mode_pads(op, mode, input, ks, ss, ds)
    else:
        pads = _number_pads(op, padding, dims)
    axes = [
        _layer_axis(op, n, k, s, d, pad, op_pad, ceil_mode)
        for n, k, s, d, pad, op_pad in zip(input, ks, ss, ds, pads, ops)
    ]
    return Layer(op, tuple(axes), ceil_mode, mode, tuple(notes))


def _check_layer(
    op: str,
    input: tuple[int, ...],
    ks: tuple[int, ...],
    ss: tuple[int, ...],
    ds: tuple[int, ...],
    ops: tuple[int, ...],
) -> None:
    """Refuse what PyTorch refuses (or cannot build) before any size is computed."""
    for name, values, least in (
        ("input", input, 1),
        ("kernel", ks, 1),
        ("stride", ss, 1),
        ("dilation", ds, 1),
        ("output-padding", ops, 0),
    ):
        for v in values:
            if v < least:
                what = "a positive integer" if least else "a non-negative integer"
                raise InputError(f"--{name}: expected {what}, got {v}")
    if op == "avgpool" and len(input) == 3 and any(n < k for n, k in zip(input, ks)):
        raise ShapeError(
            "PyTorch's 3-D average pooling needs the unpadded input to be at least the kernel "
            f"size, got input {input} and kernel {ks}"
        )
    if op == "avgpool" and any(d != 1 for d in ds):
        raise InputError("--dilation: average pooling has no dilation in PyTorch")
    if op != "convtranspose" and any(ops):
        raise InputError("--output-padding only applies to transposed convolution")


def _mode_pads(
    op: str,
    mode: str,
    input: tuple[int, ...],
    ks: tuple[int, ...],
    ss: tuple[int, ...],
    ds: tuple[int, ...],
) -> tuple[list[tuple[int, int]], list[str]]:
    """The (before, after) padding per axis a mode name implies, and notes on where PyTorch
    differs (same with stride > 1, an asymmetric split)."""
    if mode not in PAD_MODES:
        raise InputError(
            f"--padding: unknown mode {mode!r}; expected a number or valid, same, full"
        )
    if op != "conv" and mode != "valid":
        raise InputError(
            f"--padding {mode} is defined for convolution only; give {op} a number "
            f"(or use --target to find one)"
        )
    pads = [mode_pad(mode, n, k, s, d) for n, k, s, d in zip(input, ks, ss, ds)]
    notes: list[str] = []
    if mode == "same" and any(s > 1 for s in ss):
        notes.append(
            "PyTorch refuses padding='same' with stride > 1; this is TensorFlow's SAME "
            "rule, output = ceil(input / stride), with the padding it implies"
        )
    if any(lo != hi for lo, hi in pads):
        notes.append(
            "asymmetric padding: PyTorch puts the extra pixel after (right/bottom); "
            "nn.Conv's padding= cannot express it, so use F.pad or padding='same'"
        )
    return pads, notes


def _number_pads(
    op: str, padding: PadSpec | tuple[PadSpec, ...], dims: int
) -> list[tuple[int, int]]:
    """Numeric padding per axis as (before, after): an int is both sides."""
    raw = _per_axis("padding", padding, dims)  # type: ignore[arg-type]
    pads = []
    for p in raw:
        if isinstance(p, tuple):
            pads.append((int(p[0]), int(p[1])))
        else:
            pads.append((int(p), int(p)))
    for lo, hi in pads:
        if lo < 0 or hi < 0:
            raise InputError(f"--padding: expected a non-negative integer, got {min(lo, hi)}")
    if op != "conv" and any(lo != hi for lo, hi in pads):
        raise InputError(f"--padding: {op} takes symmetric padding only")
    return pads


def _layer_axis(
    op: str, n: int, k: int, s: int, d: int, pad: tuple[int, int], op_pad: int, ceil_mode: bool
) -> Axis:
    """One axis's output size by the op's formula, with what the windows leave unread."""
    if op == "conv":
        out = conv_size(n, k, s, pad, d)
    elif op == "convtranspose":
        out = transposed_size(n, k, s, pad[0], d, op_pad)
    else:
        out = pool_size(n, k, s, pad[0], d, ceil_mode)
    if op == "convtranspose":
        unread = transposed_unread(n, k, s, pad[0], d, out)
        return Axis(n, k, s, d, pad, out, op_pad, unread=unread)
    return window_axis(n, k, s, pad, d, out, ceil_mode)
