"""Receptive-field algebra, exact per spatial axis: windows, transposed convolutions (fractional
stride) and adaptive pooling, through any DAG in time linear in its edges.

Along one axis, a layer maps each output unit to the range of input positions it reads, and a
receptive field maps each unit of a node to the range of image positions it depends on. Both
have one form, a ``Span``: unit ``i = P*m + r`` (``0 <= r < P``) reads

    [Q*m + first[r], Q*m + last[r]]

- A sliding window (kernel k, dilation folded in: k' = d*(k-1) + 1, stride s, padding p before)
  is P = 1, Q = s, first = -p, last = -p + k' - 1.
- A transposed convolution with stride s has P = s, Q = 1 (a fractional stride 1/s): unit o
  reads the inputs i with i*s - p + t*d = o for some tap t, so what it reads depends on o mod s.
- Adaptive pooling from n to o positions has P = o/g, Q = n/g (g = gcd(n, o)): unit i reads
  [floor(i*n/o), ceil((i+1)*n/o) - 1], PyTorch's windows.

A field composed with a layer is again a span: the layer's unit reads positions a..b, and as
fields grow monotonically with the position, it sees from the first image position of a to the
last of b. With P = 1 this is Araujo, Norris & Sim's recursion ("Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019): r_l = r_{l-1} + (k' - 1)*S_{l-1},
S_l = S_{l-1}*s, P_l = P_{l-1} + p*S_{l-1}, the paper's r_{l-1} = s_l*r_l + (k_l - s_l)
unrolled; unit i sees [i*S_l - P_l, i*S_l - P_l + r_l - 1].

Where paths merge (add, concat) a unit sees the union of what each path sees: per axis the
smallest first and the largest last position. Paths with the same effective stride merge into
one span (so the cost per node does not grow with the number of paths); paths whose strides
differ are kept side by side, one span per stride. Each node also keeps, per stride, the span of
its narrowest path (the smallest field), and whether all paths share stride and centre.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

from cnnkit.arith.sizes import span as kernel_span

# The longest repeat of a field pattern tracked, in units (a transposed stride, an adaptive
# pooling's out/gcd, their products and least common multiples). Real networks stay below 64;
# a longer one makes the field "unknown" instead of costing time and memory in proportion.
MAX_PERIOD = 4096


class FieldTooIrregular(ValueError):
    """A field would repeat only every more than ``MAX_PERIOD`` units."""


def _check_period(period: int) -> int:
    if period > MAX_PERIOD:
        raise FieldTooIrregular(
            f"its units' fields repeat only every {period:,} units, more than the "
            f"{MAX_PERIOD:,} tracked"
        )
    return period


@dataclass(frozen=True)
class Span:
    """Along one axis, unit ``P*m + r`` covers ``[Q*m + first[r], Q*m + last[r]]``."""

    period: int  # P: units per repeat
    step: int  # Q: positions the covered range moves per repeat
    first: tuple[int, ...]
    last: tuple[int, ...]

    @classmethod
    def identity(cls) -> Span:
        """The input itself: each unit sees one position."""
        return cls(1, 1, (0,), (0,))

    @classmethod
    def window(cls, kernel: int, stride: int, pad_before: int, dilation: int = 1) -> Span:
        """A sliding window (conv, pooling): unit i reads i*s - p .. i*s - p + d*(k-1)."""
        return cls(1, stride, (-pad_before,), (-pad_before + kernel_span(kernel, dilation) - 1,))

    @classmethod
    def transposed(cls, kernel: int, stride: int, padding: int, dilation: int = 1) -> Span | None:
        """A transposed convolution: output o reads the inputs i with i*s - p + t*d = o.

        None when some output units read no input at all (kernel shorter than the stride, or a
        dilation sharing a factor with it) or read out of order (a dilation larger than the
        kernel allows): such a layer has no monotone field to report."""
        first, last = [], []
        _check_period(stride)
        g = gcd(dilation, stride)
        cycle = stride // g  # taps t*dilation = r + padding (mod stride) repeat every cycle
        inverse = pow(dilation // g, -1, cycle) if cycle > 1 else 0
        for r in range(stride):
            if (r + padding) % g:
                return None
            low = (r + padding) // g * inverse % cycle if cycle > 1 else 0  # smallest tap
            if low >= kernel:
                return None
            high = low + (kernel - 1 - low) // cycle * cycle  # largest tap
            first.append((r + padding - high * dilation) // stride)
            last.append((r + padding - low * dilation) // stride)
        result = cls(stride, 1, tuple(first), tuple(last))
        return result.reduced() if result.monotone else None

    @classmethod
    def adaptive(cls, n: int, out: int) -> Span:
        """Adaptive pooling from n to ``out`` positions: unit i reads PyTorch's window
        floor(i*n/out) .. ceil((i+1)*n/out) - 1, uneven when ``out`` does not divide n."""
        g = gcd(n, out)
        period = _check_period(out // g)
        first = tuple(r * n // out for r in range(period))
        last = tuple(-(-(r + 1) * n // out) - 1 for r in range(period))
        return cls(period, n // g, first, last).reduced()

    def lo(self, i: int) -> int:
        """The first position unit ``i`` covers."""
        m, r = divmod(i, self.period)
        return self.step * m + self.first[r]

    def hi(self, i: int) -> int:
        """The last position unit ``i`` covers."""
        m, r = divmod(i, self.period)
        return self.step * m + self.last[r]

    @property
    def stride(self) -> Fraction:
        """Effective stride: positions per unit, on average (1/s after a transposed conv)."""
        return Fraction(self.step, self.period)

    @property
    def ratio(self) -> tuple[int, int]:
        """The effective stride as a reduced (step, period) pair: cheap to compare and hash."""
        if self.period == 1:
            return self.step, 1
        g = gcd(self.step, self.period)
        return self.step // g, self.period // g

    @property
    def widest(self) -> int:
        """The largest field over all units."""
        return max(b - a + 1 for a, b in zip(self.first, self.last))

    def sizes(self, count: int | None = None) -> tuple[int, ...]:
        """Field size of each residue class (of units 0..count-1 when fewer than P exist)."""
        n = self.period if count is None else max(1, min(self.period, count))
        return tuple(self.last[r] - self.first[r] + 1 for r in range(n))

    @property
    def monotone(self) -> bool:
        """First and last positions never move backwards from one unit to the next."""
        ends = (self.first, self.last)
        return all(
            all(a <= b for a, b in zip(e, e[1:])) and e[-1] <= e[0] + self.step for e in ends
        )

    def then(self, layer: Span) -> Span:
        """The field of ``layer``'s units, ``self`` being the field of the positions it reads.

        Exact because ``self`` is monotone: the union of the fields of positions a..b runs from
        the first of a to the last of b. The result repeats once ``layer`` has moved a whole
        number of ``self``'s periods."""
        repeats = self.period // gcd(layer.step, self.period)
        period = _check_period(layer.period * repeats)
        step = self.step * (layer.step * repeats // self.period)
        first = tuple(self.lo(layer.lo(r)) for r in range(period))
        last = tuple(self.hi(layer.hi(r)) for r in range(period))
        return Span(period, step, first, last).reduced()

    def expanded(self, period: int) -> Span:
        """The same span written with a longer period (a multiple of this one)."""
        times = period // self.period
        units = range(period)
        return Span(
            period,
            self.step * times,
            tuple(self.lo(r) for r in units),
            tuple(self.hi(r) for r in units),
        )

    def union(self, other: Span) -> Span:
        """What a unit sees through either span (the strides must be equal)."""
        if self.ratio != other.ratio:
            raise ValueError("spans with different strides have no common period")
        if self.period == other.period == 1:
            first, last = min(self.first[0], other.first[0]), max(self.last[0], other.last[0])
            return Span(1, self.step, (first,), (last,))
        period = _check_period(self.period * other.period // gcd(self.period, other.period))
        a, b = self.expanded(period), other.expanded(period)
        return Span(
            period,
            a.step,
            tuple(map(min, a.first, b.first)),
            tuple(map(max, a.last, b.last)),
        ).reduced()

    def same_centres(self, other: Span) -> bool:
        """Every unit's field has the same centre through both spans (equal strides)."""
        if self.ratio != other.ratio:
            return False
        if self.period == other.period == 1:
            return self.first[0] + self.last[0] == other.first[0] + other.last[0]
        period = _check_period(self.period * other.period // gcd(self.period, other.period))
        return all(self.lo(r) + self.hi(r) == other.lo(r) + other.hi(r) for r in range(period))

    def reduced(self) -> Span:
        """The same span with its shortest period (so equal spans compare equal)."""
        for period in range(1, self.period):
            if self.period % period or (self.step * period) % self.period:
                continue
            shift = self.step * period // self.period
            if all(
                e[r + period] == e[r] + shift
                for e in (self.first, self.last)
                for r in range(self.period - period)
            ):
                return Span(period, shift, self.first[:period], self.last[:period])
        return self


def _crossings(lines: list[tuple[int, int]], last: int) -> set[int]:
    """Integers next to where two lines ``a*m + b`` cross, within 0..last."""
    out = set()
    for i, (a1, b1) in enumerate(lines):
        for a2, b2 in lines[i + 1 :]:
            if a1 != a2:
                x = (b2 - b1) // (a1 - a2)
                out.update(m for m in (x, x + 1) if 0 <= m <= last)
    return out


def _first_true(test, count: int) -> int:
    """The first i in 0..count-1 where a monotone ``test`` holds (count when none)."""
    low, high = 0, count
    while low < high:
        mid = (low + high) // 2
        if test(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _narrower(a: Span, b: Span) -> Span:
    return b if b.widest < a.widest else a


@dataclass(frozen=True)
class AxisField:
    """What units see along one axis over every path from the input.

    ``spans`` holds the union of the paths' fields, one span per distinct effective stride
    (sorted by stride; one in an aligned graph); ``narrowest[j]`` is the narrowest path among
    those of ``spans[j]``'s stride. ``aligned``: all paths share stride and field centres."""

    spans: tuple[Span, ...]
    narrowest: tuple[Span, ...]
    aligned: bool = True

    def __post_init__(self) -> None:
        period = 1
        for s in self.spans:
            period = _check_period(period * s.period // gcd(period, s.period))

    @classmethod
    def identity(cls) -> AxisField:
        return cls((Span.identity(),), (Span.identity(),))

    def lo(self, i: int) -> int:
        return min(s.lo(i) for s in self.spans)

    def hi(self, i: int) -> int:
        return max(s.hi(i) for s in self.spans)

    def size_range(self, count: int) -> tuple[int, int]:
        """Smallest and largest field size over units 0..count-1.

        With one span that is one period of sizes. With several (paths of different strides)
        the units of one class modulo the common period have ends linear in their number, so
        a size is a convex piecewise-linear function of it: largest at an end, smallest at an
        end or next to where two of the lines cross."""
        if len(self.spans) == 1:
            sizes = self.spans[0].sizes(count)
            return min(sizes), max(sizes)
        period = 1
        for s in self.spans:
            period = period * s.period // gcd(period, s.period)  # at most MAX_PERIOD
        low, high = None, None
        for rho in range(min(period, count)):
            last = (count - 1 - rho) // period
            lows = [(s.step * (period // s.period), s.lo(rho)) for s in self.spans]
            highs = [(s.step * (period // s.period), s.hi(rho)) for s in self.spans]

            def size(m: int, lows=lows, highs=highs) -> int:
                return max(a * m + b for a, b in highs) - min(a * m + b for a, b in lows) + 1

            tried = {0, last, *_crossings(lows, last), *_crossings(highs, last)}
            values = [size(m) for m in tried]
            low = min(values) if low is None else min(low, *values)
            high = max(size(0), size(last)) if high is None else max(high, size(0), size(last))
        assert low is not None and high is not None
        return low, high

    def inside(self, count: int, n: int) -> tuple[int, int]:
        """The units among 0..count-1 whose field lies inside an input of ``n`` positions:
        the run ``first..last`` (empty when first > last). Both ends of a field only move
        forward with the unit, so each condition holds on one side of a threshold."""
        first = _first_true(lambda i: self.lo(i) >= 0, count)
        last = _first_true(lambda i: self.hi(i) > n - 1, count) - 1
        return first, last

    def through(self, layer: Span) -> AxisField:
        spans = tuple(s.then(layer) for s in self.spans)
        narrowest = tuple(s.then(layer) for s in self.narrowest)
        aligned = self.aligned and (
            all(s.period == 1 for s in (*self.spans, *self.narrowest))
            or spans[0].same_centres(narrowest[0])
        )
        return AxisField(spans, narrowest, aligned)

    @staticmethod
    def merge(fields: Iterable[AxisField]) -> AxisField:
        """A node fed by several paths sees the union of what they see."""
        fields = list(fields)
        simple = _merge_simple(fields)
        if simple is not None:
            return simple
        by_stride: dict[tuple[int, int], tuple[Span, Span]] = {}
        for f in fields:
            for union, narrow in zip(f.spans, f.narrowest):
                had = by_stride.get(union.ratio)
                by_stride[union.ratio] = (
                    (union, narrow)
                    if had is None
                    else (had[0].union(union), _narrower(had[1], narrow))
                )
        strides = sorted(by_stride, key=lambda r: Fraction(*r))
        first = fields[0].spans[0]
        aligned = (
            len(strides) == 1
            and all(f.aligned for f in fields)
            and all(f.spans[0].same_centres(first) for f in fields)
        )
        return AxisField(
            tuple(by_stride[s][0] for s in strides),
            tuple(by_stride[s][1] for s in strides),
            aligned,
        )


def _merge_simple(fields: list[AxisField]) -> AxisField | None:
    """``AxisField.merge`` when every input is one period-1 span of one stride (the usual
    case, where a dense block's concat has hundreds of inputs): plain integer arithmetic."""
    step = fields[0].spans[0].step
    if any(
        len(f.spans) != 1 or f.spans[0].period != 1 or f.narrowest[0].period != 1 for f in fields
    ) or any(f.spans[0].step != step for f in fields):
        return None
    spans = [f.spans[0] for f in fields]
    first = min(s.first[0] for s in spans)
    last = max(s.last[0] for s in spans)
    narrow = min((f.narrowest[0] for f in fields), key=lambda s: s.last[0] - s.first[0])
    centre = spans[0].first[0] + spans[0].last[0]
    aligned = all(f.aligned and f.spans[0].first[0] + f.spans[0].last[0] == centre for f in fields)
    return AxisField((Span(1, step, (first,), (last,)),), (narrow,), aligned)


@dataclass(frozen=True)
class Field:
    """The receptive field of a node's units along every spatial axis."""

    axes: tuple[AxisField, ...]

    @classmethod
    def identity(cls, dims: int) -> Field:
        return cls((AxisField.identity(),) * dims)

    @property
    def dims(self) -> int:
        return len(self.axes)

    def through(self, layer: tuple[Span, ...]) -> Field:
        """The field after one more layer, given as one span per axis."""
        return Field(tuple(a.through(s) for a, s in zip(self.axes, layer)))

    @staticmethod
    def merge(fields: Iterable[Field]) -> Field:
        fields = list(fields)
        if len(fields) == 1:
            return fields[0]
        return Field(tuple(AxisField.merge(axis) for axis in zip(*(f.axes for f in fields))))

    def bounds(self, unit: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """First and last input position unit ``unit`` sees, per axis (unclipped)."""
        return tuple((a.lo(i), a.hi(i)) for a, i in zip(self.axes, unit))

    def unit_range(self, counts: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """Smallest and largest field over the units (``counts`` per axis) and paths: equal
        unless the field depends on the unit's position."""
        return tuple(axis.size_range(n) for axis, n in zip(self.axes, counts))

    @property
    def smallest(self) -> tuple[int, ...]:
        """The narrowest path's field (its largest over units)."""
        return tuple(min(s.widest for s in a.narrowest) for a in self.axes)

    @property
    def stride(self) -> tuple[Fraction, ...]:
        """Effective stride; when paths disagree, the largest (the graph is not aligned)."""
        return tuple(max(s.stride for s in a.spans) for a in self.axes)

    @property
    def padding(self) -> tuple[int, ...]:
        """Effective padding: how far before position 0 unit 0's field starts."""
        return tuple(-a.lo(0) for a in self.axes)

    def centre(self, axis: int, index: int = 0) -> float:
        """Input coordinate of the centre of unit ``index``'s field along ``axis``."""
        a = self.axes[axis]
        return (a.lo(index) + a.hi(index)) / 2

    @property
    def aligned(self) -> bool:
        """Every path has the same effective stride and field centres on every axis."""
        return all(a.aligned for a in self.axes)

    @property
    def period(self) -> tuple[int, ...]:
        """Units per repeat of the field pattern: 1 unless fields depend on the position."""
        return tuple(max(s.period for s in a.spans) for a in self.axes)


def chain(
    layers: Iterable[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
    dims: int,
) -> list[Field]:
    """Fields after each ``(kernel, stride, pad_before, dilation)`` layer of a plain chain."""
    field = Field.identity(dims)
    out = []
    for kernel, stride, pad, dilation in layers:
        field = field.through(tuple(map(Span.window, kernel, stride, pad, dilation)))
        out.append(field)
    return out
