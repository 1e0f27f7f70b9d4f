"""Every output-size rule against PyTorch's own layers, over random valid configurations."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from cnnkit.arith import sizes
from cnnkit.arith.solve import solve
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


# -- unread input, exhaustively: a gradient probe through all-ones kernels is the oracle ---------

F = torch.nn.functional


def _zero_grad_positions(x: torch.Tensor) -> list[int]:
    return [i for i, g in enumerate(x.grad[0, 0].tolist()) if g == 0]


def _probe_conv(n: int, k: int, s: int, pad: tuple[int, int], d: int) -> list[int] | None:
    """Positions of a length-n input whose gradient is 0 through an all-ones conv."""
    x = torch.ones(1, 1, n, requires_grad=True)
    try:
        y = F.conv1d(F.pad(x, pad), torch.ones(1, 1, k), stride=s, dilation=d)
    except RuntimeError:
        return None
    y.sum().backward()
    return _zero_grad_positions(x)


def _floor_dropped(n: int, k: int, s: int, pad: tuple[int, int], d: int) -> int:
    """Real positions after the end of the last window: probe the padded input itself with an
    undilated all-ones kernel as wide as the dilated span, which reads all a window covers."""
    padded = torch.ones(1, 1, n + pad[0] + pad[1], requires_grad=True)
    F.conv1d(padded, torch.ones(1, 1, sizes.span(k, d)), stride=s).sum().backward()
    covered = [i for i, g in enumerate(padded.grad[0, 0].tolist()) if g != 0]
    end = max(covered) - pad[0]  # the last position a window covers, in input coordinates
    return min(n, max(0, n - 1 - end))


def _check_warning(n: int, k: int, s: int, pad: tuple[int, int], d: int, axis) -> None:
    from cnnkit.arith.explain import unread_warning

    text = unread_warning("conv", "L", axis)
    if axis.unread == 0:
        assert text is None
        return
    dropped = _floor_dropped(n, k, s, pad, d)
    if dropped:
        assert f"the last {dropped} input position(s)" in text
        fits = text.split("inputs ")[1].split(" would fit")[0].split(" or ")
        for size in map(int, fits):  # the suggested sizes really drop nothing
            assert _floor_dropped(size, k, s, pad, d) == 0, (size, text)
    else:
        assert "floor division" not in text and "never read" not in text, text
    gaps = axis.unread - dropped
    assert (f"{gaps} input position(s) along L" in text) == (gaps > 0), text
    if "holes" in text:
        assert d > 1


def test_unread_counts_and_warnings_match_a_gradient_probe_exhaustively():
    """Every conv with n <= 10, k <= 4, s <= 5, d <= 3, padding 0-2 before and after."""
    for n, k, s, d, lo, hi in itertools.product(
        range(1, 11), range(1, 5), range(1, 6), range(1, 4), range(3), range(3)
    ):
        zero = _probe_conv(n, k, s, (lo, hi), d)
        if zero is None:
            continue
        axis = sizes.layer("conv", (n,), k, s, ((lo, hi),), d).axes[0]
        trailing = 0
        while trailing < n and n - 1 - trailing in zero:
            trailing += 1
        assert (axis.unread, axis.trailing_unread) == (len(zero), trailing), (n, k, s, d, lo, hi)
        assert axis.dropped == _floor_dropped(n, k, s, (lo, hi), d), (n, k, s, d, lo, hi)
        _check_warning(n, k, s, (lo, hi), d, axis)


def test_issue_example_dilation_gaps_are_not_blamed_on_floor_division():
    axis = sizes.layer("conv", (7,), 3, 2, 1, 2).axes[0]
    assert _probe_conv(7, 3, 2, (1, 1), 2) == [0, 2, 4, 6]
    assert (axis.unread, axis.dropped) == (4, 0)
    _check_warning(7, 3, 2, (1, 1), 2, axis)


def test_pooling_unread_matches_a_gradient_probe_in_both_ceil_modes():
    for n, k, s, ceil_mode in itertools.product(range(1, 11), range(1, 5), range(1, 6), [0, 1]):
        for p in range(k // 2 + 1):
            x = torch.ones(1, 1, n, requires_grad=True)
            try:
                y = F.avg_pool1d(x, k, s, p, ceil_mode=bool(ceil_mode))
            except RuntimeError:
                continue
            y.sum().backward()
            axis = sizes.layer("avgpool", (n,), k, s, p, ceil_mode=bool(ceil_mode)).axes[0]
            assert axis.unread == len(_zero_grad_positions(x)), (n, k, s, p, ceil_mode)
            if ceil_mode:
                assert axis.dropped == 0
            else:
                assert axis.dropped == _floor_dropped(n, k, s, (p, p), 1)


def test_transposed_unread_inputs_match_a_gradient_probe():
    """Inputs whose every output is cropped away by the padding have zero gradient."""
    for n, k, s, d in itertools.product(range(1, 7), range(1, 5), range(1, 5), range(1, 3)):
        for p, op in itertools.product(range(9), range(max(s, d))):
            x = torch.ones(1, 1, n, requires_grad=True)
            w = torch.ones(1, 1, k)
            try:
                y = F.conv_transpose1d(x, w, stride=s, padding=p, output_padding=op, dilation=d)
            except RuntimeError:
                continue
            if y.shape[-1] < 1:
                continue
            y.sum().backward()
            axis = sizes.layer("convtranspose", (n,), k, s, p, d, op).axes[0]
            assert axis.unread == len(_zero_grad_positions(x)), (n, k, s, d, p, op)


# -- --target, against a brute force over the documented range with torch's output sizes -------


def _expand(found, top: int) -> set[tuple]:
    """Solutions as a set of (stride, padding, output_padding, ceil_mode) up to stride ``top``."""
    out = set()
    for x in found:
        last = top if x.stride_max is None else x.stride_max
        for s in range(x.stride_min, last + 1):
            out.add((s, x.padding, x.output_padding, x.ceil_mode))
    return out


def _torch_len(fn, *args, **kwargs) -> int | None:
    try:
        with torch.no_grad():
            n = fn(*args, **kwargs).shape[-1]
    except RuntimeError:
        return None
    return n if n > 0 else None


def test_solve_conv_finds_exactly_what_torch_gives_symmetric_and_asymmetric():
    for n, k, d in itertools.product(range(1, 10), range(1, 5), range(1, 3)):
        extent = sizes.span(k, d)
        top = n + 2 * extent
        truth: dict[int, set[tuple]] = {}
        x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
        for s in range(1, top + 1):
            for lo in range(extent):
                for pad in ((lo, lo), (lo, lo + 1)):
                    m = _torch_len(F.conv1d, F.pad(x, pad), w, stride=s, dilation=d)
                    if m is not None:
                        truth.setdefault(m, set()).add((s, pad, 0, False))
        for target in range(1, max(truth) + 2):
            found = solve("conv", n, k, target, None, d)
            assert _expand(found, top) == truth.get(target, set()), (n, k, d, target)
            for x_ in found:  # unread at stride_min, by the gradient probe
                zero = _probe_conv(n, k, x_.stride_min, x_.padding, d)
                assert x_.unread == len(zero), (n, k, d, target, x_)
            symmetric = [x_.symmetric for x_ in found]
            assert symmetric == sorted(symmetric, reverse=True)  # symmetric first, none hidden


def test_solve_pool_finds_exactly_what_torch_gives():
    for n, k, d in itertools.product(range(1, 10), range(1, 5), range(1, 3)):
        top = n + 2 * sizes.span(k, d)
        truth: dict[int, set[tuple]] = {}
        x = torch.zeros(1, 1, n)
        for s, p, cm in itertools.product(range(1, top + 1), range(k // 2 + 1), [False, True]):
            m = _torch_len(F.max_pool1d, x, k, s, p, d, ceil_mode=cm)
            if m is not None:
                truth.setdefault(m, set()).add((s, (p, p), 0, cm))
        for target in range(1, max(truth, default=0) + 2):
            got = _expand(solve("maxpool", n, k, target, None, d), top)
            assert got == truth.get(target, set()), (n, k, d, target)


def test_solve_transposed_finds_exactly_what_torch_gives():
    """Strides up to target + span; every padding with an output; output_padding as torch allows."""
    targets = range(1, 13)
    for n, k, d in itertools.product(range(1, 6), range(1, 5), range(1, 3)):
        x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
        extent = sizes.span(k, d)
        truth: dict[int, set[tuple]] = {}
        for s in range(1, max(targets) + extent + 1):
            for op in range(max(s, d)):
                for p in range(((n - 1) * s + sizes.span(k, d) + op) // 2 + 1):
                    m = _torch_len(
                        F.conv_transpose1d, x, w, stride=s, padding=p, output_padding=op, dilation=d
                    )
                    if m is not None and s <= m + extent:
                        truth.setdefault(m, set()).add((s, (p, p), op, False))
        for target in targets:
            found = solve("convtranspose", n, k, target, None, d)
            got = _expand(found, target + extent)
            assert got == truth.get(target, set()), (n, k, d, target)


def test_issue_example_transposed_padding_4_is_found():
    found = solve("convtranspose", 7, 4, 14, 3)
    assert (4, 4) in [x.padding for x in found]
    m = torch.nn.ConvTranspose1d(1, 1, 4, stride=3, padding=4)(torch.zeros(1, 1, 7))
    assert m.shape[-1] == 14


def test_a_given_padding_narrows_the_solve_to_what_torch_gives():
    for n, k, target in itertools.product(range(1, 10), range(1, 5), range(1, 8)):
        x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, k)
        top = n + 2 * k
        for p in range(k):
            truth = {
                (s, (p, p), 0, False)
                for s in range(1, top + 1)
                if _torch_len(F.conv1d, x, w, stride=s, padding=p) == target
            }
            assert _expand(solve("conv", n, k, target, padding=p), top) == truth
        # padding='same' with any stride: TensorFlow's rule out = ceil(n / s), checked in torch
        for x_ in solve("conv", n, k, target, padding="same"):
            for s in range(x_.stride_min, (x_.stride_max or top) + 1):
                assert _torch_len(F.conv1d, F.pad(x, x_.padding), w, stride=s) == target
        same = {
            s
            for x_ in solve("conv", n, k, target, padding="same")
            for s in range(x_.stride_min, (x_.stride_max or top) + 1)
        }
        assert same == {s for s in range(1, top + 1) if -(-n // s) == target}
