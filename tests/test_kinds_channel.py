"""channel_shuffle against torch over random configurations: shape, values, counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.errors import ShapeError
from cnnkit.layers import LAYERS
from cnnkit.model import BUILDERS

KIND = LAYERS["channel_shuffle"]


def _by_hand(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's ShuffleNetV2 formulation: split the channels, swap the two axes, flatten."""
    n, ch, *rest = x.shape
    return x.view(n, groups, ch // groups, *rest).transpose(1, 2).reshape(x.shape)


@settings(max_examples=40, deadline=None)
@given(
    groups=st.integers(1, 4),
    per_group=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 5), min_size=1, max_size=3),
)
def test_channel_shuffle_matches_torch(groups, per_group, spatial):
    shape = (groups * per_group, *spatial)
    args = KIND.resolve(groups)
    assert KIND.shape(args, (shape,)) == shape
    counts = KIND.count(args, (shape,), shape)
    assert (counts.params, counts.macs, counts.ops) == (0, 0, 0)
    module = BUILDERS["channel_shuffle"](args, (shape,), shape)
    assert isinstance(module, nn.ChannelShuffle)
    x = torch.randn(2, *shape)
    assert torch.equal(module(x), _by_hand(x, groups))


def test_channels_that_do_not_divide_into_the_groups_are_one_line():
    with pytest.raises(ShapeError, match="channel_shuffle with 4 groups needs channels"):
        KIND.shape(KIND.resolve(4), ((6, 3, 3),))


def test_a_shufflenet_unit_counts_like_its_torch_module():
    """A ShuffleNet-style unit (1x1 group conv, shuffle, depthwise 3x3, 1x1 group conv):
    params and shape equal the hand-written torch module's; the shuffle adds no MACs."""
    import cnnkit
    from cnnkit.analysis import totals
    from cnnkit.recipe import recipe_from_text

    recipe = recipe_from_text(
        "input: [8, 6, 6]\n"
        "model:\n"
        "  layers:\n"
        "    - {conv: {out: 8, k: 1, groups: 2, bias: false}}\n"
        "    - {channel_shuffle: 2}\n"
        "    - {conv: {out: 8, k: 3, p: 1, groups: 8, bias: false}}\n"
        "    - {conv: {out: 8, k: 1, groups: 2, bias: false}}\n",
        "unit.yaml",
    )
    twin = nn.Sequential(
        nn.Conv2d(8, 8, 1, groups=2, bias=False),
        nn.ChannelShuffle(2),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 8, 1, groups=2, bias=False),
    )
    built = cnnkit.build(recipe)
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in twin.parameters())
    assert totals(recipe.graph).macs == 36 * (32 + 72 + 32)
    assert tuple(built(torch.randn(1, 8, 6, 6)).shape) == (1, 8, 6, 6)


SLICE = LAYERS["channel_slice"]


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 8),
    data=st.data(),
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_channel_slice_matches_torch_split(channels, data, spatial):
    start = data.draw(st.integers(0, channels - 1))
    stop = data.draw(st.integers(start + 1, channels))
    shape = (channels, *spatial)
    args = SLICE.resolve({"start": start, "stop": stop})
    assert SLICE.shape(args, (shape,)) == (stop - start, *spatial)
    counts = SLICE.count(args, (shape,), (stop - start, *spatial))
    assert (counts.params, counts.macs, counts.ops) == (0, 0, 0)
    x = torch.randn(2, *shape)
    sizes = [s for s in (start, stop - start, channels - stop)]
    expected = torch.split(x, sizes, dim=1)[1]
    got = BUILDERS["channel_slice"](args, (shape,), (stop - start, *spatial))(x)
    assert torch.equal(got, expected)
    assert got.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()  # a view


@pytest.mark.parametrize("start,stop", [(0, 7), (3, 3), (5, 2)])
def test_a_slice_outside_the_channels_is_one_line(start, stop):
    with pytest.raises(ShapeError, match=f"channel_slice start {start}, stop {stop} needs"):
        SLICE.shape(SLICE.resolve({"start": start, "stop": stop}), ((6, 3, 3),))


def test_a_shufflenet_v2_split_unit_equals_its_torch_module():
    """ShuffleNetV2's stride-1 unit: split the channels in half, transform one half, concat,
    shuffle. Same outputs as the torch formulation under the same weights."""
    import cnnkit
    from cnnkit.recipe import recipe_from_text

    recipe = recipe_from_text(
        "input: [8, 5, 5]\n"
        "model:\n"
        "  layers:\n"
        "    - {channel_slice: {stop: 4}, name: left}\n"
        "    - {channel_slice: {start: 4, stop: 8}, from: input, name: second}\n"
        "    - {conv: {out: 4, k: 3, p: 1, groups: 4, bias: false}, name: right}\n"
        "    - {concat, from: [left, right]}\n"
        "    - {channel_shuffle: 2}\n",
        "unit.yaml",
    )
    built = cnnkit.build(recipe).eval()
    (weight,) = [p for p in built.parameters()]
    x = torch.randn(2, 8, 5, 5)
    left, right = x.chunk(2, dim=1)
    right = torch.nn.functional.conv2d(right, weight, padding=1, groups=4)
    expected = _by_hand(torch.cat([left, right], dim=1), 2)
    assert torch.equal(built(x), expected)
