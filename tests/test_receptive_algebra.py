"""Receptive-field algebra against a brute-force gradient measured in PyTorch."""

from __future__ import annotations

import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit.arith import sizes
from cnnkit.arith.receptive import Field, Fields, chain


@st.composite
def random_chain(draw, dims: int):
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        k = tuple(draw(st.integers(1, 4)) for _ in range(dims))
        s = tuple(draw(st.integers(1, 3)) for _ in range(dims))
        d = tuple(draw(st.integers(1, 2)) for _ in range(dims))
        p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
        pool = draw(st.booleans())
        layers.append(("avgpool" if pool else "conv", k, s, p, (1,) * dims if pool else d))
    return layers


def _extent(grad: torch.Tensor, axis: int) -> tuple[int, int]:
    other = tuple(a for a in range(grad.dim()) if a != axis)
    hit = (grad.abs().sum(dim=other) if other else grad.abs()) > 0
    where = hit.nonzero().flatten()
    return int(where.min()), int(where.max())


def _build(layers, dims: int):
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d}[dims]
    pool = {1: torch.nn.functional.avg_pool1d, 2: torch.nn.functional.avg_pool2d}[dims]

    def forward(x):
        for kind, k, s, p, d in layers:
            if kind == "conv":
                w = torch.rand(1, 1, *k, dtype=torch.float64) + 0.1
                x = conv(x, w, stride=s, padding=p, dilation=d)
            else:
                x = pool(x, k, stride=s, padding=p)
        return x

    return forward


@given(data=st.data(), dims=st.sampled_from([1, 2]))
def test_chain_field_equals_gradient_extent(data, dims):
    layers = data.draw(random_chain(dims))
    n = tuple(data.draw(st.integers(8, 40 if dims == 1 else 20)) for _ in range(dims))
    shape = n
    try:
        for kind, k, s, p, d in layers:
            shape = sizes.layer(kind, shape, k, s, p, d).output
    except Exception:
        assume(False)
    x = torch.rand(1, 1, *n, dtype=torch.float64, requires_grad=True)
    y = _build(layers, dims)(x + 0.5)
    index = tuple(data.draw(st.integers(0, o - 1)) for o in shape)
    y[(0, 0, *index)].backward()
    assume(bool(x.grad.abs().sum() > 0))  # a unit that reads only padding has no extent
    field = chain([(k, s, p, d) for _, k, s, p, d in layers], dims)[-1]
    for axis in range(dims):
        start = index[axis] * field.stride[axis] - field.padding[axis]
        end = start + field.size[axis] - 1
        got = _extent(x.grad[0, 0], axis)
        if start >= 0 and end < n[axis]:
            # A field inside the input: its first and last taps are exactly the extent.
            assert got == (start, end), (layers, index, field)
        else:
            # Clipped by the border (dilation may leave holes): the extent lies inside it.
            assert start <= got[0] <= got[1] <= end, (layers, index, field)


def test_vgg_argument_two_3x3_see_what_one_5x5_sees():
    two = chain([((3,), (1,), (1,), (1,))] * 2, 1)[-1]
    one = chain([((5,), (1,), (2,), (1,))], 1)[-1]
    assert two.size == one.size == (5,)
    assert two.centre(0) == one.centre(0)


def test_merge_reports_largest_smallest_and_alignment():
    base = Fields.of([Field.identity(1)])
    a = base.through((3,), (1,), (1,), (1,))
    b = base.through((5,), (1,), (2,), (1,))
    c = base.through((2,), (1,), (0,), (1,))  # even kernel, no padding: centre shifts by 1/2
    merged = Fields.merge([a, b])
    assert merged.largest == (5,) and merged.smallest == (3,) and merged.aligned
    assert not Fields.merge([a, c]).aligned
