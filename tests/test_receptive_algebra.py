"""Receptive-field algebra against brute-force dependencies measured in PyTorch.

The oracle: every layer here is linear with positive weights, so pushing a batch of one-hot
inputs through the chain gives the whole Jacobian at once; output unit u depends on input
position x exactly where it is non-zero (nothing can cancel).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnkit.arith import sizes
from cnnkit.arith.receptive import AxisField, Field, Span, chain


def _dependencies(forward, shape: tuple[int, ...]) -> torch.Tensor:
    """dep[*out_unit, *in_position] > 0 where the output unit reads the input position."""
    n = 1
    for v in shape:
        n *= v
    eye = torch.eye(n, dtype=torch.float64).reshape(n, 1, *shape)
    out = forward(eye)[:, 0]  # (n, *out_spatial)
    return out.reshape(*shape, *out.shape[1:]).permute(
        *range(len(shape), out.dim() - 1 + len(shape)), *range(len(shape))
    )


def _extent(dep_row: torch.Tensor, axis: int) -> tuple[int, int] | None:
    other = tuple(a for a in range(dep_row.dim()) if a != axis)
    hit = (dep_row.sum(dim=other) if other else dep_row) > 0
    where = hit.nonzero().flatten()
    return (int(where.min()), int(where.max())) if len(where) else None


def _check_unit(field: Field, dep: torch.Tensor, unit: tuple[int, ...], n: tuple[int, ...]):
    """An interior field equals the measured extent; a field clipped by the border bounds it."""
    bounds = field.bounds(unit)
    inside = all(lo >= 0 and hi < m for (lo, hi), m in zip(bounds, n))
    row = dep[unit]
    for axis, ((lo, hi), m) in enumerate(zip(bounds, n)):
        got = _extent(row, axis)
        if inside:
            assert got == (lo, hi), (axis, unit, bounds, got)
        elif got is not None:
            assert max(lo, 0) <= got[0] <= got[1] <= min(hi, m - 1), (axis, unit, bounds, got)


# ---- one layer at a time, every unit ------------------------------------------------------


@settings(max_examples=200)
@given(
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 4),
    d=st.integers(1, 3),
    op=st.integers(0, 3),
    n=st.integers(6, 16),
)
def test_transposed_conv_span_equals_what_each_output_unit_reads(k, s, p, d, op, n):
    assume(op < max(s, d))
    assume((n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1)
    w = torch.rand(1, 1, k, dtype=torch.float64) + 0.5

    def forward(x):
        return F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d)

    dep = _dependencies(forward, (n,))
    span = Span.transposed(k, s, p, d)
    reads = [_extent(dep[o], 0) for o in range(dep.shape[0])]
    # Units whose taps all land inside the input (away from both ends) are the ones whose
    # reading pattern is not cut by the border.
    interior = [o for o in range(dep.shape[0]) if (k - 1) * d <= o + p <= (n - 1) * s]
    assume(len(interior) > s)
    if span is None:
        # Refused: some interior unit reads nothing, or reads positions before its left
        # neighbour's (no monotone field exists).
        got = [reads[o] for o in interior]
        assert None in got or any(a[0] > b[0] or a[1] > b[1] for a, b in zip(got, got[1:]))
        return
    for o in interior:
        assert reads[o] == (span.lo(o), span.hi(o)), (o, span)


@settings(max_examples=200)
@given(n=st.integers(1, 30), out=st.integers(1, 30))
def test_adaptive_span_equals_torchs_windows_for_every_unit(n, out):
    dep = _dependencies(lambda x: F.adaptive_avg_pool1d(x, out), (n,))
    span = Span.adaptive(n, out)
    for i in range(out):
        assert _extent(dep[i], 0) == (span.lo(i), span.hi(i)), (i, span)


# ---- chains mixing windows, transposed convs and adaptive pooling, 1-D and 2-D ----------


@st.composite
def random_chain(draw, dims: int):
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "avgpool", "transposed", "adaptive"]))
        k = tuple(draw(st.integers(1, 4)) for _ in range(dims))  # non-square kernels
        s = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        d = tuple(draw(st.integers(1, 2)) for _ in range(dims))
        p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
        if kind == "transposed":
            k = tuple(max(kk, ss) for kk, ss in zip(k, s))  # every output unit reads something
            d = (1,) * dims
        if kind == "avgpool":
            d = (1,) * dims
        out = tuple(draw(st.integers(2, 9)) for _ in range(dims))
        layers.append((kind, k, s, p, d, out))
    return layers


def _apply(layers, dims: int):
    conv = {1: F.conv1d, 2: F.conv2d}[dims]
    up = {1: F.conv_transpose1d, 2: F.conv_transpose2d}[dims]
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d}[dims]
    adaptive = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d}[dims]
    weights = [torch.rand(1, 1, *k, dtype=torch.float64) + 0.1 for _, k, *_ in layers]

    def forward(x):
        for (kind, k, s, p, d, out), w in zip(layers, weights):
            if kind == "conv":
                x = conv(x, w, stride=s, padding=p, dilation=d)
            elif kind == "transposed":
                x = up(x, w, stride=s, padding=p)
            elif kind == "avgpool":
                x = pool(x, k, stride=s, padding=p)
            else:
                x = adaptive(x, out)
        return x

    return forward


def _chain_field(layers, shape: tuple[int, ...]) -> tuple[Field, tuple[int, ...]]:
    field = Field.identity(len(shape))
    for kind, k, s, p, d, out in layers:
        if kind in ("conv", "avgpool"):
            shape = sizes.layer(kind, shape, k, s, p, d).output
            spans = tuple(map(Span.window, k, s, p, d))
        elif kind == "transposed":
            shape = tuple(map(sizes.transposed_size, shape, k, s, p))
            spans = tuple(map(Span.transposed, k, s, p))
        else:
            spans = tuple(map(Span.adaptive, shape, out))
            shape = out
        if min(shape) < 1:
            raise ValueError("empty output")
        field = field.through(spans)
    return field, shape


@settings(max_examples=150)
@given(data=st.data(), dims=st.sampled_from([1, 2]))
def test_chain_field_equals_the_measured_dependencies(data, dims):
    layers = data.draw(random_chain(dims))
    # A known gap (strict xfail in test_rf_graphs.py): padding read after a transposed conv.
    ups = [i for i, layer in enumerate(layers) if layer[0] == "transposed"]
    padded = [
        i for i, layer in enumerate(layers) if layer[0] in ("conv", "avgpool") and any(layer[3])
    ]
    assume(not (ups and any(i > ups[0] for i in padded)))
    n = tuple(data.draw(st.integers(6, 30 if dims == 1 else 14)) for _ in range(dims))
    try:
        field, out = _chain_field(layers, n)
    except Exception:
        assume(False)
    dep = _dependencies(_apply(layers, dims), n)
    assert tuple(dep.shape[:dims]) == out
    for unit in itertools.product(*(range(o) for o in out)):
        _check_unit(field, dep, unit, n)


def test_two_3x3_see_what_one_5x5_sees():
    two = chain([((3,), (1,), (1,), (1,))] * 2, 1)[-1]
    one = chain([((5,), (1,), (2,), (1,))], 1)[-1]
    assert two.unit_range((8,)) == one.unit_range((8,)) == ((5, 5),)
    assert two.centre(0) == one.centre(0) and two.padding == one.padding == (2,)


# ---- merges ------------------------------------------------------------------------------


def test_merge_takes_the_union_per_axis_and_reports_alignment():
    base = AxisField.identity()
    a = base.through(Span.window(3, 1, 1))  # [-1, 1]
    b = base.through(Span.window(5, 1, 2))  # [-2, 2]
    c = base.through(Span.window(2, 1, 0)).through(Span.window(2, 1, 0))  # [0, 2]
    merged = AxisField.merge([a, b])
    assert (merged.lo(0), merged.hi(0)) == (-2, 2) and merged.aligned
    offset = AxisField.merge([a, c])  # centres 0 and 1: the union is [-1, 2], 4 wide
    assert (offset.lo(0), offset.hi(0)) == (-1, 2) and not offset.aligned
    assert offset.narrowest[0].widest == 3


def test_paths_with_different_strides_stay_apart_and_are_not_aligned():
    base = AxisField.identity()
    fine = base.through(Span.window(1, 2, 0))  # unit i reads 2i
    coarse = base.through(Span.window(1, 3, 0))  # unit i reads 3i
    merged = AxisField.merge([fine, coarse])
    assert len(merged.spans) == 2 and not merged.aligned
    assert [(merged.lo(i), merged.hi(i)) for i in range(3)] == [(0, 0), (2, 3), (4, 6)]
