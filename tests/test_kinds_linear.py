"""linear over channels (ConvNeXt's channels-last nn.Linear) against torch over random
configurations: shape, values, parameter count, MACs, receptive field; and a ConvNeXt block
written as torchvision writes CNBlock, whose state_dict loads strictly into the recipe's."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnkit
from cnnkit.errors import ShapeError
from cnnkit.layers import LAYERS, ArgError
from cnnkit.model import BUILDERS
from cnnkit.recipe import recipe_from_text

KIND = LAYERS["linear"]


class ChannelsLast(nn.Module):
    """torchvision's formulation: Permute to channels-last, nn.Linear, Permute back."""

    def __init__(self, cin: int, cout: int, bias: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


@settings(max_examples=30, deadline=None)
@given(
    cin=st.integers(1, 6),
    cout=st.integers(1, 6),
    spatial=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    bias=st.booleans(),
)
def test_linear_over_channels_matches_torch(cin, cout, spatial, bias):
    shape = (cin, *spatial)
    args = KIND.resolve({"out": cout, "over": "channels", "bias": bias})
    out = KIND.shape(args, (shape,))
    counts = KIND.count(args, (shape,), out)
    oracle = ChannelsLast(cin, cout, bias)
    built = BUILDERS["linear"](args, (shape,), out)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k.removeprefix("linear."): v.shape for k, v in oracle.state_dict().items()
    }
    built.load_state_dict(oracle.linear.state_dict(), strict=True)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        expected = oracle(x)
        torch.testing.assert_close(built(x), expected)
    assert out == tuple(expected.shape[1:])
    assert counts.params == sum(p.numel() for p in oracle.parameters())
    assert counts.activations == math.prod(out)
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        built(x[:1])
    assert counts.macs == flops.get_total_flops() // 2 == cin * cout * math.prod(spatial)
    assert counts.ops == counts.macs + (math.prod(out) if bias else 0)


@settings(max_examples=20, deadline=None)
@given(
    cin=st.integers(1, 4),
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=2),
    data=st.data(),
)
def test_linear_over_channels_is_pointwise(cin, spatial, data):
    """An output position's gradient reaches exactly the same input position: the rule's
    pointwise field (None), where a vector linear sees everything."""
    shape = (cin, *spatial)
    args = KIND.resolve({"out": 3, "over": "channels"})
    assert KIND.rf(args, (shape,)) is None
    assert KIND.rf(KIND.resolve(3), ((cin,),)) is not None
    module = BUILDERS["linear"](args, (shape,), KIND.shape(args, (shape,)))
    where = tuple(data.draw(st.integers(0, n - 1)) for n in spatial)
    x = torch.randn(1, *shape, requires_grad=True)
    module(x)[(0, slice(None), *where)].sum().backward()
    touched = x.grad.abs().sum(1)[0].nonzero().tolist()
    assert touched in ([list(where)], [])  # [] only if every weight happens to be 0


def test_linear_over_is_checked_and_a_map_without_it_is_one_line():
    with pytest.raises(ArgError, match="expected one of vector, channels"):
        KIND.resolve({"out": 3, "over": "width"})
    with pytest.raises(ShapeError, match="or say over: channels"):
        KIND.shape(KIND.resolve(3), ((4, 5, 5),))
    with pytest.raises(ShapeError, match="input has 4 channels but in_features is 5"):
        KIND.shape(KIND.resolve({"out": 3, "in": 5, "over": "channels"}), ((4, 5, 5),))


class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block as its source writes it (eval: stochastic depth is the
    identity, so it is left out)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        self.layer_scale = nn.Parameter(torch.randn(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * self.block(x) + x


BLOCK = """
input: [8, 9, 9]
model:
  layers:
    - name: blk
      residual:
        layers:
          - name: block
            sequence:
              - {conv: {out: 8, k: 7, p: 3, groups: 8}, name: "0"}
              - {layernorm, name: "2"}
              - {linear: {out: 32, over: channels}, name: "3"}
              - {gelu, name: "4"}
              - {linear: {out: 8, over: channels}, name: "5"}
          - {layer_scale: 1e-6, name: layer_scale}
          - {drop_path: 0.2, name: stochastic_depth}
        shortcut: identity
    - {layer_scale: 0.5, name: gamma}          # timm's key for the same parameter
"""


def test_a_convnext_block_loads_torchvisions_cnblock_strictly():
    """The layer_scale parameter is keyed by the layer's own name (blk.layer_scale, as in
    CNBlock, not blk.layer_scale.layer_scale); the linears have nn.Linear's keys."""
    ours = cnnkit.build(recipe_from_text(BLOCK, "block.yaml")).eval()
    theirs = CNBlock(8).eval()
    state = {f"blk.{k}": v for k, v in theirs.state_dict().items()}
    state["gamma"] = torch.randn(8, 1, 1)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x) * state["gamma"])
    assert list(ours.get_submodule("blk").state_dict())[-1] == "layer_scale"
    with pytest.raises(RuntimeError, match="Unexpected key.*gamma.layer_scale"):
        ours.load_state_dict({**state, "gamma.layer_scale": state["gamma"]}, strict=True)
    missing = {k: v for k, v in state.items() if k != "blk.layer_scale"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "blk.layer_scale"\.'):
        ours.load_state_dict(missing, strict=True)


def test_a_layer_scale_keyed_by_name_still_trains_and_pickles():
    import copy
    import pickle

    model = cnnkit.build(recipe_from_text(BLOCK, "block.yaml")).train()
    F.mse_loss(model(torch.randn(2, 8, 9, 9)), torch.zeros(2, 8, 9, 9)).backward()
    assert model.get_submodule("gamma").layer_scale.grad is not None
    again = pickle.loads(pickle.dumps(model))
    assert list(again.state_dict()) == list(copy.deepcopy(model).state_dict())
    assert "blk.layer_scale" in again.state_dict()


def test_model_width_widens_a_linear_over_channels_like_a_conv():
    channels = KIND.resolve({"out": 64, "over": "channels", "in": 16})
    assert KIND.widens(channels, 0.5) == {**channels, "out": 32, "in": None}
    vector = KIND.resolve(10)
    assert KIND.widens(vector, 0.5) == vector  # the class count stays
    stem = BLOCK.replace(
        "    - name: blk", "    - {conv: {out: 8, k: 1}, name: stem}\n    - name: blk"
    )
    model = cnnkit.build(recipe_from_text(stem + "  width: 0.5\n", "block.yaml"))
    assert model.get_submodule("blk.block.3").weight.shape == (16, 4)
    assert model(torch.randn(1, 8, 9, 9)).shape == (1, 4, 9, 9)


@pytest.mark.parametrize("after_layernorm", [False, True])
def test_linear_over_channels_saves_what_autograd_keeps(after_layernorm):
    """Channels-first input: autograd keeps a channels-last copy; after a layer norm over
    channels (ConvNeXt) the input is already channels-last and kept as is: the same bytes."""
    from tests.test_memory_vs_autograd import saved_bytes

    shape = (6, 4, 5)
    args = KIND.resolve({"out": 7, "over": "channels"})
    linear = BUILDERS["linear"](args, (shape,), KIND.shape(args, (shape,)))
    saved = KIND.saves(args, (shape,), (7, 4, 5))
    assert saved.inputs == (0,) and not saved.new and not saved.output
    x = torch.randn(2, *shape, requires_grad=True)
    if after_layernorm:
        x = F.layer_norm(x.detach().movedim(1, -1), (6,)).movedim(-1, 1).requires_grad_()
    assert saved_bytes(linear, [x], False) == x.nbytes
