"""Numeric convolution against independent oracles: PyTorch's conv1d/conv2d, SciPy and NumPy.

True convolution is checked as PyTorch's cross-correlation with a ``torch.flip``-ped kernel;
'same' for true convolution is checked against scipy/numpy, whose even-kernel split is the
mirror of PyTorch's. Literal parsing is checked by round trips and by its error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnkit.arith.literals import parse_array
from cnnkit.arith.numeric import convolve, explain
from cnnkit.errors import InputError

torch.set_num_threads(1)


def arrays(shape: tuple[int, ...]):
    """Nested lists: small ints (exact, and Python ints when the scale is 1) times a scale.

    hypothesis' numpy arrays draw much faster than nested lists of numbers, which keeps
    hundreds of examples per test within a second or two.
    """
    ints = hnp.arrays(np.int8, shape, elements=st.integers(-8, 8))
    scale = st.sampled_from([1, 0.5]) | st.floats(0.125, 3)
    return st.builds(lambda a, k: (a * k).tolist(), ints, scale)


def vectors(least: int, most: int):
    return st.integers(least, most).flatmap(lambda n: arrays((n,)))


@st.composite
def problems(draw, dims: int):
    """A random multi-channel problem whose (dilated) kernel fits the padded input."""
    channels = draw(st.integers(1, 2))
    filters = draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, 4)) for _ in range(dims))
    d = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    s = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    pad = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(dims))
    least = [max(1, d_ * (k_ - 1) + 1 - lo - hi) for k_, d_, (lo, hi) in zip(k, d, pad)]
    n = tuple(draw(st.integers(m, m + 4)) for m in least)
    x = draw(arrays((channels, *n)))
    w = draw(arrays((filters, channels, *k)))
    bias = draw(arrays((filters,)))
    return x, w, bias, k, s, d, pad


def _torch_conv(x, w, bias, stride, dilation, pad, flip: bool) -> np.ndarray:
    """PyTorch's answer: explicit F.pad (asymmetric allowed), kernel flipped for convolution."""
    dims = len(stride)
    xt = torch.tensor(x, dtype=torch.float64).unsqueeze(0)
    wt = torch.tensor(w, dtype=torch.float64)
    if flip:
        wt = torch.flip(wt, dims=list(range(2, 2 + dims)))
    pads = [p for lo_hi in reversed(pad) for p in lo_hi]  # F.pad: last axis first
    xt = F.pad(xt, pads)
    conv = F.conv1d if dims == 1 else F.conv2d
    out = conv(xt, wt, torch.tensor(bias, dtype=torch.float64), stride=stride, dilation=dilation)
    return out[0].numpy()


@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_explicit_padding_stride_dilation_match_torch(dims, data):
    """Multi-channel, several filters, bias; a D x kh x kw kernel is one filter."""
    x, w, bias, _, s, d, pad = data.draw(problems(dims))
    flip = data.draw(st.booleans())
    if dims == 1:  # 1-D kernels take a 1-D signal: one channel, one filter
        x, w, bias = x[0], w[0][0], bias[:1]
        expected = _torch_conv([x], [[w]], bias, s, d, pad, flip)[0]
    elif len(w) == 1 and data.draw(st.booleans()):
        expected = _torch_conv(x, w, bias, s, d, pad, flip)[0]
        w = w[0]  # Z = sum_d W^d (*) X^d + b: a single 2-D map
    else:
        expected = _torch_conv(x, w, bias, s, d, pad, flip)
    got = convolve(x, w, bias, flip=flip, padding=list(pad), stride=s, dilation=d)
    assert got.output_shape == expected.shape
    np.testing.assert_allclose(np.array(got.output), expected, rtol=1e-9, atol=1e-9)
    assert got.operation == ("convolution" if flip else "cross-correlation")
    assert got.padding == pad and got.stride == s and got.dilation == d


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_cross_correlation_same_matches_torch_padding_same(dims, data):
    """PyTorch's own padding='same' (stride 1) decides the even-kernel split here."""
    x, w, bias, _, _, d, _ = data.draw(problems(dims))
    if dims == 1:
        x, w, bias = [x[0]], [[w[0][0]]], bias[:1]
    conv = F.conv1d if dims == 1 else F.conv2d
    expected = conv(
        torch.tensor([x], dtype=torch.float64),
        torch.tensor(w, dtype=torch.float64),
        torch.tensor(bias, dtype=torch.float64),
        padding="same",
        dilation=d,
    )[0].numpy()
    if dims == 1:
        got = convolve(x[0], w[0][0], bias, flip=False, padding="same", dilation=d).output
        expected = expected[0]
    else:
        got = convolve(x, w, bias, flip=False, padding="same", dilation=d).output
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-9, atol=1e-9)


def _dilate(kernel: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """The kernel with dilation - 1 zeros between taps, for oracles that lack dilation."""
    shape = tuple(d * (k - 1) + 1 for k, d in zip(kernel.shape, dilation))
    out = np.zeros(shape)
    out[tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


@given(
    x=st.integers(1, 8).flatmap(lambda h: st.integers(1, 8).flatmap(lambda w: arrays((h, w)))),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(arrays),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    mode=st.sampled_from(["valid", "same", "full"]),
)
def test_true_convolution_modes_match_scipy_convolve2d(x, k, dilation, mode):
    xa, ka = np.array(x), _dilate(np.array(k), dilation)
    if mode == "valid" and any(a < b for a, b in zip(xa.shape, ka.shape)):
        with pytest.raises(InputError, match="--w: the kernel spans"):
            convolve(x, k, padding=mode, dilation=dilation)
        return
    got = convolve(x, k, padding=mode, dilation=dilation)
    expected = scipy.signal.convolve2d(xa, ka, mode=mode)
    np.testing.assert_allclose(np.array(got.output), expected, rtol=1e-9, atol=1e-9)


@given(
    x=st.integers(1, 8).flatmap(lambda h: st.integers(1, 8).flatmap(lambda w: arrays((h, w)))),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)).flatmap(arrays),
    mode=st.sampled_from(["valid", "same", "full"]),
)
def test_cross_correlation_modes_match_scipy_correlate2d(x, k, mode):
    xa, ka = np.array(x), np.array(k)
    if mode == "valid" and any(a < b for a, b in zip(xa.shape, ka.shape)):
        return
    got = convolve(x, k, flip=False, padding=mode)
    if mode == "same" and any(n % 2 == 0 for n in ka.shape):
        # scipy centres an even kernel the other way; PyTorch's split is the one kept.
        expected = scipy.signal.correlate2d(
            np.pad(xa, [((n - 1) // 2, n // 2) for n in ka.shape]), ka, "valid"
        )
    else:
        expected = scipy.signal.correlate2d(xa, ka, mode=mode)
    np.testing.assert_allclose(np.array(got.output), expected, rtol=1e-9, atol=1e-9)


@given(
    x=vectors(1, 12),
    k=vectors(1, 5),
    mode=st.sampled_from(["valid", "same", "full"]),
)
def test_1d_modes_match_numpy_convolve(x, k, mode):
    if len(k) > len(x) and mode == "valid":
        with pytest.raises(InputError, match="--w: the kernel spans"):
            convolve(x, k, padding=mode)
        return
    got = convolve(x, k, padding=mode)
    if len(k) <= len(x) or mode == "full":  # else numpy swaps the arguments; scipy does not
        expected = np.convolve(x, k, mode=mode)
        np.testing.assert_allclose(got.output, expected, rtol=1e-9, atol=1e-9)
    if mode == "same":
        expected = scipy.signal.convolve(x, k, mode="same")
        np.testing.assert_allclose(got.output, expected, rtol=1e-9, atol=1e-9)


@given(data=st.data())
def test_same_with_stride_is_tensorflow_same(data):
    """stride > 1 with 'same': ceil(n / s) outputs; PyTorch's split (xcorr) or its mirror."""
    x, w, bias, k, s, d, _ = data.draw(problems(2))
    flip = data.draw(st.booleans())
    pads = []
    for n, k_, s_, d_ in zip(np.array(x).shape[1:], k, s, d):
        out = -(-n // s_)
        total = max((out - 1) * s_ + d_ * (k_ - 1) + 1 - n, 0)
        lo, hi = total // 2, total - total // 2
        pads.append((hi, lo) if flip else (lo, hi))
    got = convolve(x, w, bias, flip=flip, padding="same", stride=s, dilation=d)
    expected = _torch_conv(x, w, bias, s, d, pads, flip)
    assert got.output_shape[1:] == tuple(-(-n // s_) for n, s_ in zip(np.array(x).shape[1:], s))
    assert [list(p) for p in got.padding] == [list(p) for p in pads]
    np.testing.assert_allclose(np.array(got.output), expected, rtol=1e-9, atol=1e-9)


@given(data=st.data())
def test_explain_terms_sum_to_the_output_element(data):
    x, w, bias, _, s, d, pad = data.draw(problems(2))
    flip = data.draw(st.booleans())
    kwargs = {"flip": flip, "padding": list(pad), "stride": s, "dilation": d}
    result = convolve(x, w, bias, **kwargs)
    index = tuple(data.draw(st.integers(0, n - 1)) for n in result.output_shape)
    detail = explain(x, w, index, bias, **kwargs)
    p, i, j = index
    assert detail.value == result.output[p][i][j]  # same order of summation: exactly equal
    assert detail.bias == bias[p]
    for t in detail.terms:
        c, r, q = t.input_index
        assert t.input == x[c][r][q]
        assert (
            t.weight
            == w[t.weight_index[0]][t.weight_index[1]][t.weight_index[2]][t.weight_index[3]]
        )
        assert t.weight_index[:2] == (p, c)
        assert t.product == t.input * t.weight
    kh, kw = len(w[0][0]), len(w[0][0][0])
    assert len(detail.terms) + detail.padding_taps == len(x) * kh * kw


def test_explain_shows_the_flip():
    """In true convolution the first input tap meets the kernel's last weight."""
    x, w = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 2], [3, 4]]
    conv = explain(x, w, (0, 0))
    assert [t.weight_index for t in conv.terms] == [(1, 1), (1, 0), (0, 1), (0, 0)]
    assert conv.value == 1 * 4 + 2 * 3 + 4 * 2 + 5 * 1
    xcorr = explain(x, w, (0, 0), flip=False)
    assert [t.weight_index for t in xcorr.terms] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert xcorr.value == 1 * 1 + 2 * 2 + 4 * 3 + 5 * 4


def test_integers_stay_exact_ints():
    """Python ints never round: 10**18 + 5 would not survive float64."""
    got = convolve([[10**18, 1], [1, 1]], [[3, 1], [1, 1]]).output
    # flipped kernel [[1, 1], [1, 3]] over the one 2x2 window
    assert got == [[10**18 * 1 + 1 * 1 + 1 * 1 + 1 * 3]] and isinstance(got[0][0], int)


@pytest.mark.parametrize(
    ("x", "w", "kwargs", "message"),
    [
        ([1, 2], [1, 2, 3], {}, "--w: the kernel spans 3 positions along L"),
        ([[1, 2]], [[1], [2]], {"padding": "valid"}, "along H"),
        ([[[1]], [[2]]], [[[1]]], {}, "--w/--x: the kernel has 1 channel.* --x has 2"),
        ([[1, 2]], [1, 2], {}, "--w: a 1-D kernel"),
        ([1, 2], [[1]], {}, "--x: a 2-D kernel needs"),
        ([1, 2, 3], [1], {"stride": 0}, "--stride: expected a positive integer"),
        ([1, 2, 3], [1], {"dilation": (1, 1)}, "--dilation: 2 values"),
        ([1, 2, 3], [1], {"padding": -1}, "--padding"),
        ([[1, 2], [3]], [1], {}, "--x: ragged"),
        ([], [1], {}, "--x: empty"),
    ],
)
def test_bad_problems_name_the_option(x, w, kwargs, message):
    with pytest.raises(InputError, match=message):
        convolve(x, w, **kwargs)


def test_bias_must_match_the_filters():
    with pytest.raises(InputError, match="--bias: 1 value.* for 2 filter"):
        convolve([[[1, 2]]], [[[[1]]], [[[2]]]], [1])


def test_explain_index_outside_the_output():
    with pytest.raises(InputError, match="--explain: 2,0 is outside the 2x2 output"):
        explain([[1, 2, 3]] * 3, [[1, 1]] * 2, (2, 0))


# -- literals ---------------------------------------------------------------------------------


def _literal(values, rank: int) -> str:
    join = {1: " ", 2: "; ", 3: " | ", 4: " || "}
    if rank == 1:
        return ", ".join(map(str, values)) if len(values) % 2 else " ".join(map(str, values))
    return join[rank].join(_literal(v, rank - 1) for v in values)


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_literals_round_trip(shape, data):
    values = data.draw(
        st.lists(st.integers(-99, 99), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
    )
    nested = np.array(values).reshape(shape).tolist()
    text = _literal(nested, len(shape))
    if shape[0] == 1 and len(shape) > 1:
        text += {2: ";", 3: " |", 4: " ||"}[len(shape)]  # a lone item's rank marker
    parsed = parse_array("--x", text)
    assert parsed.shape == shape
    assert parsed.values == nested


def test_literal_floats_and_files(tmp_path):
    assert parse_array("--w", "0.5, -1e-1 2").values == [0.5, -0.1, 2]
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("1,2,3\n4,5,6\n\n")
    assert parse_array("--x", str(csv_file)).values == [[1, 2, 3], [4, 5, 6]]
    row = tmp_path / "row.csv"
    row.write_text("1,2.5\n")
    assert parse_array("--x", str(row)).shape == (2,)
    npy = tmp_path / "w.npy"
    np.save(npy, np.arange(24).reshape(2, 3, 2, 2))
    parsed = parse_array("--w", str(npy))
    assert parsed.shape == (2, 3, 2, 2) and parsed.values[1][2][1][1] == 23
    assert isinstance(parsed.values[0][0][0][0], int)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3; 4 5 a", r"--x: row 2, column 3: 'a' is not a number"),
        ("1 2 3; 4 5", "--x: row 2 has 2 values, row 1 has 3"),
        ("1 2; 3 4 | 5 6", "--x: channel 2 is 1x2, channel 1 is 2x2"),
        ("1 | 2 || 3", "--x: filter 2 is 1x1x1, filter 1 is 2x1x1"),
        ("1 2 | 3 x", "--x: channel 2, row 1, column 2: 'x' is not a number"),
        ("  ", "--x: empty input"),
        ("1; ; 2", "--x: row 2 is empty"),
        ("inf", "not a finite number"),
        ("missing.csv", "--x: file 'missing.csv' not found"),
    ],
)
def test_literal_errors_name_option_and_place(text, message):
    with pytest.raises(InputError, match=message):
        parse_array("--x", text)


def test_csv_errors_name_file_row_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,b\n")
    with pytest.raises(InputError, match=r"--x: bad.csv row 2, column 2: 'b' is not a number"):
        parse_array("--x", str(bad))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3\n")
    with pytest.raises(InputError, match="--x: ragged.csv row 2 has 1 values, row 1 has 2"):
        parse_array("--x", str(ragged))
