"""Numeric convolution of small arrays in pure Python, exact on integers.

True convolution (kernel flipped in every spatial axis, as mathematics and signal processing
define it) is the default; ``flip=False`` gives cross-correlation, what ``nn.Conv`` computes.
Both handle 1-D signals and 2-D images, modes valid/same/full or explicit zero padding, stride
and dilation, and multi-channel input C x H x W with P filters of D = C channels and a bias:
``Z^p = sum_d W^{p,d} (*) X^d + b^p``.

Output sizes and mode paddings come from ``cnnkit.arith.sizes``, the same rules ``cnnkit conv``
reports, so the numbers and the sizes can never disagree. Internally a 1-D problem is a 2-D one
with a height-1 input and kernel, so one loop serves both.

'same' with an even kernel span cannot pad both sides equally. Cross-correlation keeps PyTorch's
split (the extra zero after); true convolution mirrors it (the extra zero before), which is what
``scipy.signal.convolve(mode='same')`` and ``numpy.convolve(mode='same')`` compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Any

from cnnkit.arith.explain import unread_warning
from cnnkit.arith.sizes import PAD_MODES, conv_size, mode_pad, span, window_axis
from cnnkit.errors import InputError, ShapeError

Number = int | float
Pad = tuple[int, int]
PadArg = int | str | Sequence[int | Pad]
IntArg = int | Sequence[int]
AXIS_NAMES = {1: ("L",), 2: ("H", "W")}
MAX_MACS = 20_000_000  # a few seconds of the pure-Python loop


@dataclass(frozen=True)
class Term:
    """One product in an output element: input value times (unflipped) kernel weight."""

    input_index: tuple[int, ...]
    input: Number
    weight_index: tuple[int, ...]
    weight: Number
    product: Number


@dataclass(frozen=True)
class Explanation:
    """The terms that sum to one output element; taps over zero padding are only counted."""

    index: tuple[int, ...]
    terms: tuple[Term, ...]
    bias: Number
    value: Number
    padding_taps: int


@dataclass(frozen=True)
class ConvResult:
    """A numeric convolution: the geometry used and the output as nested lists."""

    operation: str  # "convolution" | "cross-correlation"
    input_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    bias: tuple[Number, ...] | None  # None when no bias was given (zero)
    mode: str | None  # "valid" | "same" | "full", or None for explicit padding
    padding: tuple[Pad, ...]  # (before, after) per spatial axis
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    output_shape: tuple[int, ...]
    output: list[Any]
    notes: tuple[str, ...]


def shape_of(option: str, values: Any) -> tuple[int, ...]:
    """The shape of a rectangular, non-empty nested list of numbers (an error names ``option``)."""
    if not isinstance(values, list | tuple):
        if isinstance(values, int | float) and not isinstance(values, bool):
            return ()
        raise InputError(f"{option}: {values!r} is not a number")
    if not values:
        raise InputError(f"{option}: empty array")
    shapes = {shape_of(option, v) for v in values}
    if len(shapes) != 1:
        raise InputError(f"{option}: ragged array (rows or channels of different lengths)")
    return (len(values), *shapes.pop())


def _flatten(values: Any) -> list[Number]:
    if not isinstance(values, list | tuple):
        return [values]
    return [v for item in values for v in _flatten(item)]


def _nest(flat: Sequence[Number], shape: tuple[int, ...]) -> list[Any]:
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _per_axis(option: str, value: Any, nd: int) -> list[Any]:
    values = [value] if isinstance(value, int | str) else list(value)
    if len(values) == 1:
        values = values * nd
    if len(values) != nd:
        raise InputError(f"{option}: {len(values)} values, but the convolution is {nd}-D")
    return values


def _channels(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(spatial dims, filters P, channels D) from the ranks; errors name --x and --w."""
    xr, wr = len(x_shape), len(w_shape)
    if wr == 1:
        if xr != 1:
            raise InputError(
                f"--w: a 1-D kernel convolves a 1-D signal, but --x is {_text(x_shape)}; "
                'write a 1 x K kernel as one row ending in ";" (e.g. "1 0 -1;")'
            )
        return 1, 1, 1
    if wr not in (2, 3, 4):
        raise InputError(f"--w: expected 1-D to 4-D (P x D x kh x kw), got {_text(w_shape)}")
    if xr not in (2, 3):
        raise InputError(
            f"--x: a {wr}-D kernel needs a 2-D image or C x H x W input, got a {xr}-D "
            f"input of shape {_text(x_shape)}"
        )
    filters, depth = (w_shape[0], w_shape[1]) if wr == 4 else (1, w_shape[0] if wr == 3 else 1)
    channels = x_shape[0] if xr == 3 else 1
    if channels != depth:
        raise InputError(
            f"--w/--x: the kernel has {depth} channel(s) but --x has {channels}; "
            "they must match (channels are split by |)"
        )
    return 2, filters, depth


def _axis_pad(
    mode: str | None, explicit: int | Pad, n: int, k: int, s: int, d: int, flip: bool
) -> Pad:
    """Zero padding of one axis: a mode's (mirrored for true convolution) or the explicit one."""
    if mode is None:
        lo, hi = explicit if isinstance(explicit, tuple) else (explicit, explicit)
        if lo < 0 or hi < 0:
            raise InputError(f"--padding: expected a non-negative integer, got {min(lo, hi)}")
        return lo, hi
    lo, hi = mode_pad(mode, n, k, s, d)
    return (hi, lo) if mode == "same" and flip else (lo, hi)


class _Problem:
    """A validated convolution problem in one internal 2-D form (1-D: height 1)."""

    def __init__(
        self,
        x: Any,
        w: Any,
        bias: Sequence[Number] | None,
        flip: bool,
        padding: PadArg,
        stride: IntArg,
        dilation: IntArg,
    ) -> None:
        self.x_shape, self.w_shape = shape_of("--x", x), shape_of("--w", w)
        self.nd, self.filters, self.depth = _channels(self.x_shape, self.w_shape)
        self.flip = flip
        self.n = self.x_shape[-self.nd :]
        self.k = self.w_shape[-self.nd :]
        self.bias_given = bias is not None
        self.bias = self._bias(bias)
        self._geometry(padding, stride, dilation)
        # Flat channel planes; the kernel is stored flipped for true convolution, so the loop
        # below is always a cross-correlation, and weight indices map back to the original.
        xs = _flatten(x)
        plane = len(xs) // self.depth
        self.x = [xs[i * plane : (i + 1) * plane] for i in range(self.depth)]
        ws = _flatten(w)
        taps = len(ws) // (self.filters * self.depth)
        self.w = [ws[i * taps : (i + 1) * taps] for i in range(self.filters * self.depth)]
        if flip:
            self.w = [list(reversed(kernel)) for kernel in self.w]

    def _bias(self, bias: Sequence[Number] | None) -> list[Number]:
        if bias is None:
            return [0] * self.filters
        values = list(bias)
        if len(values) != self.filters:
            raise InputError(
                f"--bias: {len(values)} value(s) for {self.filters} filter(s); "
                "give one bias per filter"
            )
        return values

    def _geometry(self, padding: PadArg, stride: IntArg, dilation: IntArg) -> None:
        """Per-axis stride, dilation, padding and output size, through ``sizes``."""
        nd = self.nd
        self.stride = tuple(_per_axis("--stride", stride, nd))
        self.dilation = tuple(_per_axis("--dilation", dilation, nd))
        for option, values in (("--stride", self.stride), ("--dilation", self.dilation)):
            if any(v < 1 for v in values):
                raise InputError(f"{option}: expected a positive integer, got {min(values)}")
        self.mode = padding if isinstance(padding, str) else None
        if self.mode is not None and self.mode not in PAD_MODES:
            raise InputError(f"--padding: unknown mode {self.mode!r}; expected valid, same, full")
        explicit = [0] * nd if self.mode else _per_axis("--padding", padding, nd)
        names = AXIS_NAMES[nd]
        self.pad: list[Pad] = []
        self.out: list[int] = []
        self.notes: list[str] = []
        for i in range(nd):
            n, k, s, d = self.n[i], self.k[i], self.stride[i], self.dilation[i]
            pad = _axis_pad(self.mode, explicit[i], n, k, s, d, self.flip)
            try:
                out = conv_size(n, k, s, pad, d)
            except ShapeError:
                raise InputError(
                    f"--w: the kernel spans {span(k, d)} positions along {names[i]} but --x "
                    f"has only {n} (padding {pad[0]}+{pad[1]}); use --mode same or full, "
                    "or more --padding"
                ) from None
            self.pad.append(pad)
            self.out.append(out)
            axis = window_axis(n, k, s, pad, d, out)
            if (warning := unread_warning("stride", names[i], axis)) is not None:
                self.notes.append(warning)
        self._mode_notes()
        self._check_size()

    def _mode_notes(self) -> None:
        """Say which 'same' rule and which split of an odd padding were used."""
        if self.mode != "same":
            return
        strided = any(s > 1 for s in self.stride)
        uneven = [n for n, (lo, hi) in zip(AXIS_NAMES[self.nd], self.pad) if lo != hi]
        notes = []
        if uneven and self.flip:
            notes.append(
                f"same pads an odd number of zeros along {' and '.join(uneven)}: the extra zero "
                "goes before (top/left), PyTorch's split mirrored for true convolution"
                + ("" if strided else ", so this equals scipy.signal.convolve(mode='same')")
            )
        elif uneven:
            notes.append(
                f"same pads an odd number of zeros along {' and '.join(uneven)}: the extra zero "
                "goes after (bottom/right), as PyTorch's padding='same' does"
            )
        if strided:
            notes.append(
                "same with stride > 1: TensorFlow's SAME rule, output = ceil(input / stride) "
                "(PyTorch refuses padding='same' with stride > 1)"
            )
        self.notes[:0] = notes

    def _check_size(self) -> None:
        """Refuse work the pure-Python loop would take many seconds over."""
        macs = self.filters * self.depth * prod(self.out) * prod(self.k)
        if macs > MAX_MACS:
            raise InputError(
                f"--x/--w: {macs:,} multiplications is too much for cnnkit's exact pure-Python "
                f"convolution (limit {MAX_MACS:,}); it is meant for small worked examples, use "
                "torch.nn.functional.conv2d for large arrays"
            )

    # -- the loop -------------------------------------------------------------------------

    def _axes2d(self) -> tuple[tuple[int, int, int, int, int, Pad], ...]:
        """(n, k, out, stride, dilation, pad) of rows and columns; 1-D gets a dummy row axis."""
        axes = tuple(zip(self.n, self.k, self.out, self.stride, self.dilation, self.pad))
        return axes if self.nd == 2 else ((1, 1, 1, 1, 1, (0, 0)), *axes)

    def _row_col_taps(self) -> tuple[list[list[tuple[int, int]]], ...]:
        """Per output row and per output column: (kernel offset, input position) on real input."""
        return tuple(
            [
                [(u, o * s - pad[0] + u * d) for u in range(k) if 0 <= o * s - pad[0] + u * d < n]
                for o in range(out)
            ]
            for n, k, out, s, d, pad in self._axes2d()
        )

    def planes(self) -> list[list[Number]]:
        """Output planes, one flat row-major list per filter.

        Each element is ``sum(products) + bias`` in the order ``explain`` lists the terms, so
        an explained total equals the printed element exactly, floats included.
        """
        rows, cols = self._row_col_taps()
        width, kw = self._axes2d()[1][:2]
        planes = []
        for p in range(self.filters):
            plane: list[Number] = []
            for row_taps in rows:
                for col_taps in cols:
                    total: Number = 0
                    for c in range(self.depth):
                        xc, wc = self.x[c], self.w[p * self.depth + c]
                        for u, r in row_taps:
                            for v, q in col_taps:
                                total += xc[r * width + q] * wc[u * kw + v]
                    plane.append(total + self.bias[p])
            planes.append(plane)
        return planes

    def output_shape(self) -> tuple[int, ...]:
        return (self.filters, *self.out) if len(self.w_shape) == 4 else tuple(self.out)

    def _check_index(self, index: tuple[int, ...]) -> None:
        shape = self.output_shape()
        form = {1: "I", 2: "I,J", 3: "P,I,J"}[len(shape)]
        if len(index) != len(shape):
            raise InputError(
                f"--explain: the output is {_text(shape)}, so give {form} "
                f"({len(shape)} zero-based index(es)), got {','.join(map(str, index))}"
            )
        if any(not 0 <= i < n for i, n in zip(index, shape)):
            last = ",".join(str(n - 1) for n in shape)
            raise InputError(
                f"--explain: {','.join(map(str, index))} is outside the {_text(shape)} output "
                f"(indices start at 0; the last element is {last})"
            )

    def explain(self, index: Sequence[int]) -> Explanation:
        """The products summed for output ``index`` (P first when there are several filters)."""
        index = tuple(index)
        self._check_index(index)
        p = index[0] if len(self.w_shape) == 4 else 0
        spatial = index[-self.nd :]
        i, j = spatial if self.nd == 2 else (0, spatial[0])
        rows, cols = self._row_col_taps()
        (_, kh, *_), (width, kw, *_) = self._axes2d()
        terms = []
        for c in range(self.depth):
            for u, r in rows[i]:
                for v, q in cols[j]:
                    xv, wv = self.x[c][r * width + q], self.w[p * self.depth + c][u * kw + v]
                    terms.append(
                        Term(
                            self._input_index(c, r, q),
                            xv,
                            self._weight_index(p, c, u, v, kh, kw),
                            wv,
                            xv * wv,
                        )
                    )
        total: Number = 0
        for term in terms:
            total += term.product
        padding_taps = self.depth * kh * kw - len(terms)
        return Explanation(index, tuple(terms), self.bias[p], total + self.bias[p], padding_taps)

    def _input_index(self, c: int, r: int, q: int) -> tuple[int, ...]:
        spatial = (r, q) if self.nd == 2 else (q,)
        return (c, *spatial) if len(self.x_shape) == self.nd + 1 else spatial

    def _weight_index(self, p: int, c: int, u: int, v: int, kh: int, kw: int) -> tuple[int, ...]:
        """Position in the kernel as given: undo the flip so a student sees it happen."""
        if self.flip:
            u, v = kh - 1 - u, kw - 1 - v
        spatial = (u, v) if self.nd == 2 else (v,)
        rank = len(self.w_shape)
        return {4: (p, c, *spatial), 3: (c, *spatial)}.get(rank, spatial)

    def result(self) -> ConvResult:
        shape = self.output_shape()
        flat = [v for plane in self.planes() for v in plane]
        return ConvResult(
            operation="convolution" if self.flip else "cross-correlation",
            input_shape=self.x_shape,
            kernel_shape=self.w_shape,
            bias=tuple(self.bias) if self.bias_given else None,
            mode=self.mode,
            padding=tuple(self.pad),
            stride=self.stride,
            dilation=self.dilation,
            output_shape=shape,
            output=_nest(flat, shape),
            notes=tuple(self.notes),
        )


def convolve(
    x: Any,
    w: Any,
    bias: Sequence[Number] | None = None,
    *,
    flip: bool = True,
    padding: PadArg = 0,
    stride: IntArg = 1,
    dilation: IntArg = 1,
) -> ConvResult:
    """Convolve ``x`` with ``w`` (nested lists); ``flip=False`` for cross-correlation.

    ``w`` 1-D: ``x`` is a 1-D signal. ``w`` 2-D: ``x`` is a 2-D image. ``w`` D x kh x kw: one
    filter over ``x`` C x H x W (C = D). ``w`` P x D x kh x kw: P filters, output P x H' x W'.
    ``padding`` is a mode ("valid", "same", "full"), an int, or per axis ints or (before, after)
    pairs. ``bias`` holds one value per filter.
    """
    return _Problem(x, w, bias, flip, padding, stride, dilation).result()


def explain(
    x: Any,
    w: Any,
    index: Sequence[int],
    bias: Sequence[Number] | None = None,
    *,
    flip: bool = True,
    padding: PadArg = 0,
    stride: IntArg = 1,
    dilation: IntArg = 1,
) -> Explanation:
    """The terms (input x weight products) that sum, with the bias, to output element ``index``.

    Weight indices point into the kernel as given (unflipped), so in true convolution the
    input's first tap meets the kernel's last weight: the flip is visible.
    """
    return _Problem(x, w, bias, flip, padding, stride, dilation).explain(index)
