"""Random configurations of the norm kinds and ConvNeXt's training-only kinds against torch:
shapes, parameter and buffer counts, outputs, and drop_path's train-mode mask statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.layers import LAYERS, ArgError
from cnnkit.model import BUILDERS

SPATIAL = st.lists(st.integers(1, 5), min_size=0, max_size=3)


def _check(name, value, shape, oracle):
    kind = LAYERS[name]
    args = kind.resolve(value)
    out = kind.shape(args, (shape,))
    counts = kind.count(args, (shape,), out)
    built = BUILDERS[name](args, (shape,), out).eval()
    oracle.eval()
    assert built.state_dict().keys() == oracle.state_dict().keys()
    built.load_state_dict(oracle.state_dict())
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(built(x), oracle(x))
    assert out == tuple(oracle(x).shape[1:])
    assert counts.params == sum(p.numel() for p in oracle.parameters())
    assert counts.buffers == sum(b.numel() for b in oracle.buffers())
    assert counts.activations == math.prod(out)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), SPATIAL, st.booleans())
def test_groupnorm_vs_torch(groups, per_group, spatial, affine):
    ch = groups * per_group
    oracle = nn.GroupNorm(groups, ch, affine=affine)
    _check("groupnorm", {"groups": groups, "affine": affine}, (ch, *spatial), oracle)


def test_groupnorm_refuses_channels_not_divisible_by_groups():
    kind = LAYERS["groupnorm"]
    with pytest.raises(Exception, match="not divisible by 4 groups"):
        kind.shape(kind.resolve(4), ((6, 3, 3),))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), SPATIAL.filter(bool), st.booleans(), st.booleans())
def test_instancenorm_vs_torch(ch, spatial, affine, track):
    cls = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[len(spatial)]
    if math.prod(spatial) < 2 and not track:
        spatial = [2, *spatial[1:]]
    oracle = cls(ch, affine=affine, track_running_stats=track)
    _check("instancenorm", {"affine": affine, "track": track}, (ch, *spatial), oracle)


class LayerNorm2d(nn.LayerNorm):
    """torchvision ConvNeXt's LayerNorm2d (2-D inputs)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.booleans())
def test_layernorm_over_channels_is_convnexts_layernorm2d(ch, h, w, affine):
    oracle = LayerNorm2d(ch, eps=1e-6, elementwise_affine=affine)
    with torch.no_grad():
        for p in oracle.parameters():
            p.normal_()
    _check("layernorm", {"affine": affine}, (ch, h, w), oracle)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.booleans())
def test_layernorm_over_last_is_nn_layernorm(shape, affine):
    oracle = nn.LayerNorm(shape[-1], eps=1e-6, elementwise_affine=affine)
    _check("layernorm", {"over": "last", "affine": affine}, tuple(shape), oracle)


def test_layernorm_over_is_checked():
    with pytest.raises(ArgError, match="expected one of channels, last"):
        LAYERS["layernorm"].resolve({"over": "width"})


def test_layer_scale_loads_torchvision_cnblock_parameter():
    kind = LAYERS["layer_scale"]
    args = kind.resolve(None)
    built = BUILDERS["layer_scale"](args, ((5, 3, 3),), (5, 3, 3))
    gamma = built.state_dict()["layer_scale"]
    assert gamma.shape == (5, 1, 1) and torch.all(gamma == 1e-6)
    assert kind.count(args, ((5, 3, 3),), (5, 3, 3)).params == 5


def _stochastic_depth(x, p, gen, scale):
    """torchvision.ops.stochastic_depth(mode='row'), rewritten (torchvision is absent)."""
    keep = 1 - p
    noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep, generator=gen)
    if keep > 0 and scale:
        noise.div_(keep)
    return x * noise


@pytest.mark.parametrize("scale", [True, False])
def test_drop_path_identity_in_eval_and_per_sample_in_train(scale):
    args = LAYERS["drop_path"].resolve({"p": 0.25, "scale_by_keep": scale})
    module = BUILDERS["drop_path"](args, ((3, 4),), (3, 4))
    x = torch.randn(4000, 3, 4) + 5
    assert torch.equal(module.eval()(x), x)
    module.train()
    torch.manual_seed(7)
    ours = module(x)
    torch.manual_seed(7)
    gen = torch.default_generator
    theirs = _stochastic_depth(x, 0.25, gen, scale)
    torch.testing.assert_close(ours, theirs)
    kept = (ours != 0).flatten(1)
    assert torch.all(kept == kept[:, :1])  # a whole sample is kept or dropped
    dropped = 1 - kept[:, 0].float().mean().item()
    assert abs(dropped - 0.25) < 0.03
    expected = 1 / 0.75 if scale else 1.0
    rows = kept[:, 0]
    torch.testing.assert_close(ours[rows], x[rows] * expected)
