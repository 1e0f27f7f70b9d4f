"""Every output-size rule against PyTorch's own layers, over random valid configurations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit.arith import sizes
from cnnkit.errors import ShapeError

torch.set_num_threads(1)

CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
CONVT = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}
MAXPOOL = {1: torch.nn.MaxPool1d, 2: torch.nn.MaxPool2d, 3: torch.nn.MaxPool3d}
AVGPOOL = {1: torch.nn.AvgPool1d, 2: torch.nn.AvgPool2d, 3: torch.nn.AvgPool3d}
MAX_SIDE = {1: 40, 2: 14, 3: 7}


@st.composite
def axes(draw, dims: int, max_kernel: int = 5):
    n = draw(st.lists(st.integers(1, MAX_SIDE[dims]), min_size=dims, max_size=dims))
    k = draw(st.lists(st.integers(1, max_kernel), min_size=dims, max_size=dims))
    s = draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))
    d = draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    return tuple(n), tuple(k), tuple(s), tuple(d)


def _torch_out(module, channels: int, spatial: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        with torch.no_grad():
            y = module(torch.zeros(1, channels, *spatial))
    except RuntimeError:
        return None
    out = tuple(y.shape[2:])
    return None if 0 in out else out  # PyTorch lets a transposed conv return empty tensors


def _ours(op, spatial, *args, **kwargs) -> tuple[int, ...] | None:
    try:
        return sizes.layer(op, spatial, *args, **kwargs).output
    except ShapeError:
        return None


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
def test_conv_matches_torch(dims, data):
    n, k, s, d = data.draw(axes(dims))
    p = tuple(data.draw(st.lists(st.integers(0, 3), min_size=dims, max_size=dims)))
    groups = data.draw(st.sampled_from([1, 2]))
    conv = CONV[dims](2, 2, k, stride=s, padding=p, dilation=d, groups=groups)
    assert _ours("conv", n, k, s, p, d) == _torch_out(conv, 2, n)


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
def test_same_and_valid_modes_match_torch(dims, data):
    n, k, _, d = data.draw(axes(dims))
    mode = data.draw(st.sampled_from(["same", "valid"]))
    conv = CONV[dims](1, 1, k, padding=mode, dilation=d)
    theirs = _torch_out(conv, 1, n)
    assert _ours("conv", n, k, 1, mode, d) == theirs
    if mode == "same" and theirs is not None:
        assert theirs == n


@given(data=st.data())
def test_full_mode_is_input_plus_span_minus_one(data):
    n, k, _, d = data.draw(axes(2))
    full = tuple(sizes.span(kk, dd) - 1 for kk, dd in zip(k, d))
    conv = torch.nn.Conv2d(1, 1, k, padding=full, dilation=d)
    assert _ours("conv", n, k, 1, "full", d) == _torch_out(conv, 1, n)


@given(data=st.data())
def test_tf_same_with_stride_is_ceil_of_input_over_stride(data):
    n, k, s, d = data.draw(axes(2))
    out = sizes.layer("conv", n, k, s, "same", d)
    assert out.output == tuple(-(-nn // ss) for nn, ss in zip(n, s))
    # The implied (asymmetric) padding really gives that size in PyTorch via F.pad.
    x = torch.zeros(1, 1, *n)
    pads = [v for a in reversed(out.axes) for v in a.pad]
    y = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, pads), torch.zeros(1, 1, *k), stride=s, dilation=d
    )
    assert tuple(y.shape[2:]) == out.output


@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_transposed_matches_torch(dims, data):
    n, k, s, d = data.draw(axes(dims))
    p = tuple(data.draw(st.lists(st.integers(0, 3), min_size=dims, max_size=dims)))
    op = tuple(data.draw(st.integers(0, max(ss, dd) - 1)) for ss, dd in zip(s, d))
    try:
        convt = CONVT[dims](2, 2, k, stride=s, padding=p, output_padding=op, dilation=d)
    except ValueError:
        return
    assert _ours("convtranspose", n, k, s, p, d, op) == _torch_out(convt, 2, n)


@given(data=st.data())
def test_transposed_rejects_output_padding_like_torch(data):
    n, k, s, d = data.draw(axes(1))
    op = (max(s[0], d[0]),)
    with pytest.raises(ShapeError, match="output_padding"):
        sizes.layer("convtranspose", n, k, s, 0, d, op)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
@given(data=st.data())
def test_maxpool_matches_torch(dims, ceil_mode, data):
    n, k, s, d = data.draw(axes(dims))
    p = tuple(data.draw(st.integers(0, kk // 2)) for kk in k)
    pool = MAXPOOL[dims](k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    assert _ours("maxpool", n, k, s, p, d, ceil_mode=ceil_mode) == _torch_out(pool, 1, n)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
@given(data=st.data())
def test_avgpool_matches_torch(dims, ceil_mode, data):
    n, k, s, _ = data.draw(axes(dims))
    p = tuple(data.draw(st.integers(0, kk // 2)) for kk in k)
    pool = AVGPOOL[dims](k, stride=s, padding=p, ceil_mode=ceil_mode)
    assert _ours("avgpool", n, k, s, p, 1, ceil_mode=ceil_mode) == _torch_out(pool, 1, n)


def test_pool_padding_over_half_kernel_is_refused_like_torch():
    with pytest.raises(RuntimeError):
        torch.nn.MaxPool1d(3, 1, 2)(torch.zeros(1, 1, 9))
    with pytest.raises(ShapeError, match="half the kernel"):
        sizes.pool_size(9, 3, 1, 2)


@given(
    n=st.integers(1, 60),
    k=st.integers(1, 7),
    s=st.integers(1, 6),
    d=st.integers(1, 3),
    p=st.integers(0, 3),
)
def test_unread_positions_match_a_gradient_probe(n, k, s, d, p):
    """Input positions with zero gradient are exactly those no window reads."""
    assume(sizes.span(k, d) <= n + 2 * p)
    x = torch.ones(1, 1, n, requires_grad=True)
    torch.nn.functional.conv1d(
        x, torch.ones(1, 1, k), stride=s, padding=p, dilation=d
    ).sum().backward()
    unread = int((x.grad == 0).sum())
    axis = sizes.layer("conv", (n,), k, s, p, d).axes[0]
    assert axis.unread == unread
    trailing = 0
    for g in reversed(x.grad[0, 0].tolist()):
        if g != 0:
            break
        trailing += 1
    assert axis.trailing_unread == trailing
