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
