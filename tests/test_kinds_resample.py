"""upsample, pixel_shuffle and pixel_unshuffle against torch over random configurations: the
output shape and values against F.interpolate / nn.PixelShuffle, and the receptive field of
every output unit against the exact set of input positions with a non-zero gradient (the
full Jacobian of the layer, in float64 and float32), through random graphs as well."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from cnnkit.analysis.receptive import receptive_fields
from cnnkit.errors import CnnkitError, ShapeError
from cnnkit.layers import LAYERS, Resampled
from cnnkit.model import BUILDERS
from cnnkit.recipe.model import validate
from cnnkit.recipe.source import Source
from tests.test_rf_graphs import check_fields

UP = LAYERS["upsample"]
DIMS_OF = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


@st.composite
def configurations(draw):
    """A mode, an input shape of its rank, and a size or a scale (any ratio, up or down)."""
    mode = draw(st.sampled_from(["nearest", "linear", "bilinear", "bicubic", "trilinear"]))
    dims = DIMS_OF.get(mode) or draw(st.integers(1, 3))
    sp = tuple(draw(st.integers(1, 9 if dims < 3 else 4)) for _ in range(dims))
    value: dict = {"mode": mode}
    if draw(st.booleans()):
        value["size"] = [draw(st.integers(1, 20 if dims < 3 else 8)) for _ in range(dims)]
    else:
        factor = st.one_of(st.integers(1, 4), st.floats(0.3, 4.0).map(lambda f: round(f, 2)))
        value["scale"] = [draw(factor) for _ in range(dims)]
    if mode != "nearest" and draw(st.booleans()):
        value["align_corners"] = draw(st.booleans())
    return value, (2, *sp)


def _torch_kwargs(value: dict) -> dict:
    scale = value.get("scale")
    return {
        "size": value.get("size"),
        "scale_factor": None if scale is None else [float(s) for s in scale],
        "mode": value["mode"],
        "align_corners": value.get("align_corners"),
    }


@settings(max_examples=120, deadline=None)
@given(config=configurations())
def test_upsample_shape_and_values_match_interpolate(config):
    value, shape = config
    args = UP.resolve(value)
    x = torch.randn(1, *shape)
    try:
        expected = F.interpolate(x, **_torch_kwargs(value))
    except (RuntimeError, ValueError):
        with pytest.raises(ShapeError):
            UP.shape(args, (shape,))
        return
    out = UP.shape(args, (shape,))
    assert out == tuple(expected.shape[1:])
    counts = UP.count(args, (shape,), out)
    assert (counts.params, counts.macs, counts.activations) == (0, 0, expected[0].numel())
    assert torch.equal(BUILDERS["upsample"](args, (shape,), out)(x), expected)


def _jacobian_extents(value: dict, shape: tuple[int, ...], dtype) -> list[list]:
    """Per axis, per output index: first and last input index with a non-zero derivative
    (the other axes summed), from the full Jacobian of one interpolation."""
    x = torch.rand(1, 1, *shape[1:], dtype=dtype) + 0.5
    jac = torch.autograd.functional.jacobian(
        lambda t: F.interpolate(t, **_torch_kwargs(value)), x, vectorize=True
    )
    dims = len(shape) - 1
    out = tuple(jac.shape[2 : 2 + dims])
    jac = jac.reshape(*out, *shape[1:]).abs()  # out axes..., in axes...
    extents = []
    for axis in range(dims):
        other = [a for a in range(2 * dims) if a not in (axis, dims + axis)]
        m = jac.sum(other) if other else jac  # (out_axis, in_axis)
        rows = []
        for row in m > 0:
            hit = row.nonzero().flatten()
            rows.append((int(hit.min()), int(hit.max())) if len(hit) else None)
        extents.append(rows)
    return extents


@settings(max_examples=150, deadline=None)
@given(config=configurations())
def test_every_units_field_is_where_the_gradient_is_non_zero(config):
    value, shape = config
    args = UP.resolve(value)
    try:
        out = UP.shape(args, (shape,))
    except ShapeError:
        assume(False)
    rule = UP.rf(args, (shape,))
    assert isinstance(rule, Resampled)
    if rule.spans is None:
        event(f"unknown: {rule.reason}")
        return
    event(f"period {max(s.period for s in rule.spans)}")
    for dtype in (torch.float64, torch.float32):
        extents = _jacobian_extents(value, shape, dtype)
        for span, n, count, rows in zip(rule.spans, shape[1:], out[1:], extents):
            assert len(rows) == count
            for o, got in enumerate(rows):
                clipped = (max(span.lo(o), 0), min(span.hi(o), n - 1))
                assert got == clipped, (dtype, o, span, got)


def test_the_exact_patterns_of_the_common_cases():
    """Bilinear x2 (align_corners false): unit 2m reads m-1, m; unit 2m+1 reads m, m+1 (a
    fractional stride 1/2). Nearest x2 reads m; bicubic to the same size reads
    each position alone (src is an integer: the other three taps weigh exactly 0)."""
    bilinear = UP.rf(UP.resolve({"mode": "bilinear", "scale": 2}), ((1, 8, 8),))
    assert bilinear.spans[0].period == 2 and bilinear.spans[0].step == 1
    assert (bilinear.spans[0].first, bilinear.spans[0].last) == ((-1, 0), (0, 1))
    nearest = UP.rf(UP.resolve(2), ((1, 8, 8),))
    assert (nearest.spans[0].first, nearest.spans[0].last) == ((0, 0), (0, 0))
    same = UP.rf(UP.resolve({"size": 8, "mode": "bicubic"}), ((1, 8, 8),))
    assert (same.spans[0].period, same.spans[0].first, same.spans[0].last) == (1, (0,), (0,))


@pytest.mark.parametrize(
    "value,message",
    [
        ({"mode": "nearest", "scale": 2, "align_corners": True}, "align_corners applies only"),
        ({"mode": "bilinear"}, "exactly one of size and scale"),
        ({"mode": "bilinear", "scale": 2, "size": 4}, "exactly one of size and scale"),
        ({"mode": "trilinear", "scale": 2}, "mode trilinear takes 3 spatial axes"),
        ({"scale": 0.1}, "leaves no output"),
        ({"scale": [2, 2, 2]}, "scale has 3 values"),
    ],
)
def test_bad_upsample_arguments_are_one_line(value, message):
    with pytest.raises(ShapeError, match=message):
        UP.shape(UP.resolve(value), ((3, 5, 5),))


def _recipe(layers, n=(10, 9), channels=2):
    return validate({"input": [channels, *n], "model": {"layers": layers}}, Source("<t>"))


def test_resize_to_a_reference_reads_only_the_first_input():
    """U-Net's odd sizes and FCN's `from: [classifier, input]`: x resized to ref's size; the
    field is x's through the resize, ref adds no positions."""
    recipe = _recipe(
        [
            {"conv": {"out": 2, "k": 3, "s": 2}, "name": "down"},
            {"upsample": {"mode": "bilinear"}, "from": ["down", "input"], "name": "up"},
        ]
    )
    up = recipe.graph["up"]
    assert up.shape == (2, 10, 9)
    x, ref = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 10, 9)
    module = BUILDERS["upsample"](up.args, ((2, 4, 4), (2, 10, 9)), up.shape)
    assert torch.equal(module(x, ref), F.interpolate(x, size=(10, 9), mode="bilinear"))
    assert check_fields(recipe) > 0


@st.composite
def graphs(draw):
    conv = st.fixed_dictionaries(
        {"out": st.just(2), "k": st.integers(1, 3)},
        optional={"s": st.integers(1, 2), "p": st.integers(0, 1)},
    ).map(lambda a: {"conv": a})
    up = st.tuples(st.sampled_from(["nearest", "bilinear", "bicubic"]), st.integers(2, 3)).map(
        lambda t: {"upsample": {"mode": t[0], "scale": t[1]}}
    )
    sized = st.tuples(st.sampled_from(["nearest", "bilinear"]), st.integers(5, 17)).map(
        lambda t: {"upsample": {"mode": t[0], "size": t[1]}}
    )
    return draw(st.lists(st.one_of(conv, up, sized), min_size=2, max_size=4))


@settings(max_examples=40, deadline=None)
@given(n=st.tuples(st.integers(6, 14), st.integers(6, 14)), layers=graphs())
def test_fields_through_convs_and_upsampling_equal_the_gradient(n, layers):
    try:
        recipe = _recipe(layers, n)
    except CnnkitError:
        assume(False)
    last = receptive_fields(recipe.graph)[-1]
    assume(last.fields is not None)
    check_fields(recipe)


@settings(max_examples=40, deadline=None)
@given(r=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4))
def test_pixel_shuffle_and_unshuffle_match_torch(r, c, h, w):
    shape = (c * r * r, h, w)
    shuffle, unshuffle = LAYERS["pixel_shuffle"], LAYERS["pixel_unshuffle"]
    out = shuffle.shape(shuffle.resolve(r), (shape,))
    x = torch.randn(1, *shape)
    y = BUILDERS["pixel_shuffle"](shuffle.resolve(r), (shape,), out)(x)
    assert torch.equal(y, F.pixel_shuffle(x, r)) and out == tuple(y.shape[1:])
    back = unshuffle.shape(unshuffle.resolve(r), (out,))
    assert back == shape
    assert torch.equal(BUILDERS["pixel_unshuffle"](unshuffle.resolve(r), (out,), back)(y), x)


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_fields_equal_the_gradient(r):
    recipe = _recipe(
        [
            {"conv": {"out": 2 * r * r, "k": 3, "p": 1}},
            {"pixel_shuffle": r},
            {"conv": {"out": 4, "k": 3, "p": 1}},
            {"pixel_unshuffle": 2},
            {"conv": {"out": 2, "k": 3}},
        ],
        (16, 12),
    )
    assert check_fields(recipe) > 0


def test_a_size_from_a_second_input_refuses_size_and_scale():
    with pytest.raises(ShapeError, match="with a second input the size is its size; drop scale"):
        UP.shape(UP.resolve({"scale": 2}), ((3, 4, 4), (1, 8, 8)))
    with pytest.raises(ShapeError, match="another number of axes"):
        UP.shape(UP.resolve({"mode": "nearest"}), ((3, 4, 4), (1, 8)))


def test_where_rounding_decides_the_field_is_unknown_with_the_reason():
    """Bilinear x3: unit 1's src is 0 exactly, but float32 with a fused multiply-add makes it
    2^-26, so float32 reads position 1 with weight 1.5e-8 and float64 does not."""
    rule = UP.rf(UP.resolve({"mode": "linear", "scale": 3}), ((1, 5),))
    assert rule.spans is None and "unit 1 reads input positions 0..0 or 0..1" in rule.reason
    x = torch.rand(1, 1, 5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(
        lambda t: F.interpolate(t, scale_factor=3.0, mode="linear"), x
    )
    assert jac[0, 0, 1, 0, 0, 1] == 0  # float64: not read; float32 may read it (FMA builds)
    recipe = _recipe([{"upsample": {"mode": "bilinear", "scale": 3}}])
    assert "depending on the rounding" in receptive_fields(recipe.graph)[-1].unknown


@settings(max_examples=25, deadline=None)
@given(
    n=st.tuples(st.integers(9, 19), st.integers(9, 19)),
    mode=st.sampled_from(["nearest", "bilinear", "bicubic"]),
    align=st.booleans(),
    down=st.sampled_from([{"avgpool": 2}, {"conv": {"out": 2, "k": 3, "s": 2}}]),
)
def test_unet_skips_with_a_resize_to_the_skip_equal_the_gradient(n, mode, align, down):
    """Odd sizes: the decoder resizes to its skip's size, concatenates and convolves; the
    union of the two paths' fields (strides 1 and about 1/2) equals the gradient's extent.
    Average pooling, not max: a max pool's gradient reaches one position per window."""
    resize = {"mode": mode, **({"align_corners": align} if mode != "nearest" else {})}
    recipe = _recipe(
        [
            {"conv": {"out": 2, "k": 3, "p": 1}, "name": "skip"},
            down,
            {"conv": {"out": 2, "k": 3, "p": 1}, "name": "deep"},
            {"upsample": resize, "from": ["deep", "skip"], "name": "up"},
            {"concat": None, "from": ["skip", "up"]},
            {"conv": {"out": 2, "k": 3}},
        ],
        n,
    )
    last = receptive_fields(recipe.graph)[-1]
    assume(last.fields is not None)
    check_fields(recipe)
