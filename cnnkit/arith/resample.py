"""Which input positions each output unit of an interpolation reads, exactly as PyTorch's CPU
kernels (aten/src/ATen/native/UpSample.h) compute it, along one axis.

Sizes: a scale s gives floor(n * s) outputs; PyTorch then indexes with the scale itself (its
default ``recompute_scale_factor=None``), not with n / out, so ``scale`` is kept when given.
Indices are computed in floating point, so they are emulated here in the same precision:

- nearest: src = floor(o * scale) with scale = float32(1 / s) or float32(n) / out, all in
  float32 whatever the tensor's dtype; out == n copies and out == 2n halves, shortcuts.
- linear (per axis of bilinear/trilinear) and cubic: src = scale * (o + 0.5) - 0.5
  (``align_corners``: (n - 1) / (out - 1) * o) in the tensor's own precision; linear reads
  floor(src) and the next position, cubic floor(src) - 1 .. floor(src) + 2. A tap of weight
  exactly 0 (src an integer) is not read: its gradient is 0, so it is not in the field, just
  as a padded tap is not. out == n copies (linear only).

A tap whose weight depends on rounding (float32 against float64, a fused multiply-add or
not, or a cubic weight too close to 0 to survive float32) makes the field ambiguous: the unit
is reported, so that the caller can say "unknown" rather than a wrong number.

Positions are unclipped: the border clamps of PyTorch (src < 0 read as 0, the last position
repeated) read the same positions as the unclipped rule once clipped to the input, which is
how the field algebra treats padding.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from fractions import Fraction

from cnnkit.arith.receptive import MAX_PERIOD, Span

LINEAR_MODES = ("linear", "bilinear", "trilinear")
TAPS = {"nearest": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}
CUBIC_MARGIN = 2.0**-12  # a cubic weight this close to an integer src may round to 0


class Ambiguous(ValueError):
    """Rounding decides which inputs some output unit reads."""


def f32(x: float) -> float:
    """``x`` rounded to float32 (correct for one +, -, * or / of float32 values, which double
    precision computes exactly enough)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def f64(x: float) -> float:
    return float(x)


def output_size(n: int, scale: float) -> int:
    """PyTorch's size for a scale: floor(n * scale), in double precision."""
    return math.floor(float(n) * scale)


def _scale(n: int, out: int, scale: float | None, align: bool, r: Callable) -> float:
    """``area_pixel_compute_scale`` in the precision ``r`` rounds to."""
    if align:
        return r(r(float(n - 1)) / r(float(out - 1))) if out > 1 else 0.0
    if scale is not None:
        return r(1.0 / scale)
    return r(r(float(n)) / r(float(out)))


def nearest_reads(n: int, out: int, scale: float | None) -> list[tuple[int, int]]:
    """Per output unit, the one input position mode ``nearest`` copies (PyTorch's
    ``nearest_idx``, float32 always)."""
    if out == n:
        return [(o, o) for o in range(out)]
    if out == 2 * n:
        return [(o >> 1, o >> 1) for o in range(out)]
    s = _scale(n, out, scale, False, f32)
    return [(math.floor(f32(f32(float(o)) * s)),) * 2 for o in range(out)]


def _sources(o: int, s: float, align: bool, r: Callable) -> set[float]:
    """src for unit ``o`` with and without a fused multiply-add, rounded by ``r``."""
    if align:
        return {r(s * o)}
    fused = r(float(Fraction(s) * Fraction(2 * o + 1, 2) - Fraction(1, 2)))
    return {fused, r(r(s * (o + 0.5)) - 0.5)}


def _taps(src: float | Fraction, cubic: bool) -> tuple[int, int]:
    low = math.floor(src)
    t = src - low
    if t == 0:
        return low, low
    if cubic and (t < CUBIC_MARGIN or t > 1 - CUBIC_MARGIN):
        raise Ambiguous("a cubic weight rounds to zero or not depending on the precision")
    return (low - 1, low + 2) if cubic else (low, low + 1)


def _exact_ratio(n: int, out: int, scale: float | None, align: bool) -> Fraction:
    if align:
        return Fraction(n - 1, out - 1) if out > 1 else Fraction(0)
    return 1 / Fraction(scale) if scale is not None else Fraction(n, out)


def interpolated_reads(
    mode: str, n: int, out: int, scale: float | None, align: bool
) -> list[tuple[int, int]]:
    """Per output unit, the first and last input position a linear or cubic mode reads with
    a non-zero weight, unclipped as in exact arithmetic; ``Ambiguous`` when float32 and
    float64, fused or not, read different positions of the input."""
    cubic = mode == "bicubic"
    if out == n and not cubic:
        return [(o, o) for o in range(out)]
    scales = [(_scale(n, out, scale, align, r), r) for r in (f32, f64)]
    exact = _exact_ratio(n, out, scale, align)
    units = []
    for o in range(out):
        variants = [_taps(src, cubic) for s, r in scales for src in _sources(o, s, align, r)]
        inside = {_clip(v, n) for v in variants}
        if len(inside) > 1:
            spans = " or ".join(f"{a}..{b}" for a, b in sorted(inside))
            raise Ambiguous(
                f"output unit {o} reads input positions {spans} depending on the rounding "
                "(float32 or float64, a fused multiply-add or not): a tap of weight 0 or "
                "nearly 0, so its field depends on the dtype and the CPU"
            )
        ideal = _taps(
            exact * o if align else exact * Fraction(2 * o + 1, 2) - Fraction(1, 2), cubic
        )
        units.append(ideal if _clip(ideal, n) in inside else variants[0])
    return units


def _clip(taps: tuple[int, int], n: int) -> tuple[int, int]:
    return max(taps[0], 0), min(taps[1], n - 1)


def reads(mode: str, n: int, out: int, scale: float | None, align: bool) -> list[tuple[int, int]]:
    """The positions each output unit of ``mode`` reads (see the module docstring)."""
    if mode == "nearest":
        return nearest_reads(n, out, scale)
    return interpolated_reads(mode, n, out, scale, align)


def period(mode: str, n: int, out: int, scale: float | None, align: bool) -> tuple[int, int]:
    """(units, positions) per repeat of the index pattern in exact arithmetic: the ratio
    PyTorch indexes with, (n - 1)/(out - 1), 1/scale or n/out, as a reduced fraction."""
    if out == n:
        return 1, 1
    if mode == "nearest" and out == 2 * n:
        return 2, 1
    ratio = _exact_ratio(n, out, scale, align).limit_denominator(MAX_PERIOD)
    return ratio.denominator, ratio.numerator


def axis_span(mode: str, n: int, out: int, scale: float | None, align: bool) -> Span:
    """The ``Span`` of one axis: the exact pattern when every unit follows it, else the units
    tabulated one by one (exact for the ``out`` units that exist), clipped to the input when
    only the clamped reads are in order (bicubic with align_corners)."""
    units = reads(mode, n, out, scale, align)
    p, q = period(mode, n, out, scale, align)
    if p <= out:
        span = _span(units[:p], p, q)
        if span.monotone and all(
            span.lo(o) == a and span.hi(o) == b for o, (a, b) in enumerate(units)
        ):
            return span.reduced()
    for tabulated in (units, [_clip(u, n) for u in units]):
        span = _span(tabulated, out, n)
        if span.monotone:
            return span.reduced()
    raise Ambiguous(
        "its units' fields do not move forward with the unit (an aligned bicubic unit reads one "
        "position, its neighbours four), which the field algebra needs"
    )


def _span(units: list[tuple[int, int]], period: int, step: int) -> Span:
    first = tuple(lo for lo, _ in units)
    last = tuple(hi for _, hi in units)
    if period == len(units):  # tabulated: a step that only extrapolates past the ends
        step = max(step, first[-1] - first[0], last[-1] - last[0])
    return Span(period, step, first, last)
