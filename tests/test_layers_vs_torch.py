"""Every layer kind against an independent PyTorch oracle: output shape and counts.

Each case gives a recipe value, an input shape (no batch) and an oracle: a module built
here directly from torch (or a functional expression with its parameter count written out),
so a new kind in LAYERS must add a row here (``test_every_kind_has_an_oracle``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.layers import LAYERS, SEES_ALL, Resampled, Window
from cnnkit.model import BUILDERS


class Fn(nn.Module):
    """An oracle written as a function, with its parameter/buffer counts spelled out."""

    def __init__(self, fn, params: int = 0, buffers: int = 0) -> None:
        super().__init__()
        self.fn, self.n_params, self.n_buffers = fn, params, buffers

    def forward(self, *xs):
        return self.fn(*xs)


TABLE = [[0, 1, 2], [1, 2, 3], [0, 3], [0, 1, 2, 3]]

# kind: (recipe value, input shape(s), oracle factory)
CASES = {
    "conv": (
        {"out": 8, "k": [3, 5], "s": 2, "p": 1, "d": [1, 2]},
        [(4, 17, 19)],
        lambda: nn.Conv2d(4, 8, (3, 5), 2, 1, (1, 2)),
    ),
    "convtranspose": (
        {"out": 6, "k": 4, "s": 2, "p": 1, "groups": 2},
        [(4, 7)],
        lambda: nn.ConvTranspose1d(4, 6, 4, 2, 1, groups=2),
    ),
    "maxpool": (
        {"k": 3, "s": 2, "p": 1, "ceil_mode": True},
        [(3, 10, 11)],
        lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True),
    ),
    "avgpool": ({"k": 2}, [(3, 9, 9, 9)], lambda: nn.AvgPool3d(2)),
    "adaptive_avgpool": ([3, 2], [(3, 10, 7)], lambda: nn.AdaptiveAvgPool2d((3, 2))),
    "adaptive_maxpool": (4, [(2, 17)], lambda: nn.AdaptiveMaxPool1d(4)),
    "global_avgpool": (None, [(5, 6, 7)], lambda: Fn(lambda x: x.mean((2, 3)))),
    "global_maxpool": (None, [(5, 13)], lambda: Fn(lambda x: x.amax(2))),
    "linear": (7, [(12,)], lambda: nn.Linear(12, 7)),
    "flatten": (None, [(2, 3, 4)], lambda: nn.Flatten()),
    "embedding": (
        {"vocab": 50, "dim": 8},
        [(11,)],
        lambda: Fn(lambda x: nn.Embedding(50, 8)(x).transpose(1, 2), 50 * 8),
    ),
    "bn": (None, [(6, 5, 5)], lambda: nn.BatchNorm2d(6)),
    "lrn": ({"size": 3}, [(8, 5, 5)], lambda: nn.LocalResponseNorm(3)),
    "dropout": (0.3, [(4, 5)], lambda: nn.Dropout(0.3)),
    "relu": (None, [(3, 4)], lambda: nn.ReLU()),
    "relu6": (None, [(3, 4)], lambda: nn.ReLU6()),
    "sigmoid": (None, [(3, 4)], lambda: nn.Sigmoid()),
    "tanh": (None, [(3, 4)], lambda: nn.Tanh()),
    "scaled_tanh": (None, [(3, 4)], lambda: Fn(lambda x: 1.7159 * torch.tanh(2 * x / 3))),
    "leaky_relu": (0.2, [(3, 4)], lambda: nn.LeakyReLU(0.2)),
    "prelu": ({"per_channel": True}, [(3, 4, 4)], lambda: nn.PReLU(3)),
    "rrelu": (None, [(3, 4)], lambda: nn.RReLU()),
    "elu": (None, [(3, 4)], lambda: nn.ELU()),
    "maxout": (3, [(6, 4)], lambda: Fn(lambda x: x.view(1, 2, 3, 4).amax(2))),
    "softmax": (None, [(10,)], lambda: nn.Softmax(dim=1)),
    "log_softmax": (None, [(4, 3)], lambda: nn.LogSoftmax(dim=1)),
    "identity": (None, [(4, 3)], lambda: nn.Identity()),
    "add": (None, [(4, 3), (4, 3), (4, 3)], lambda: Fn(lambda a, b, c: a + b + c)),
    "concat": (None, [(4, 3), (2, 3)], lambda: Fn(lambda a, b: torch.cat([a, b], 1))),
    "subsample": (2, [(6, 8, 8)], lambda: Fn(lambda x: F.avg_pool2d(x, 2) * 4, params=2 * 6)),
    "partial_conv": (
        {"table": TABLE, "k": 3},
        [(4, 9, 9)],
        lambda: Fn(lambda x: torch.zeros(1, 4, 7, 7), params=sum(map(len, TABLE)) * 9 + 4),
    ),
    "rbf": (10, [(84,)], lambda: Fn(lambda x: torch.zeros(1, 10), buffers=840)),
    # ShuffleNet's channel shuffle, written as torchvision's ShuffleNetV2 writes it.
    "channel_shuffle": (
        3,
        [(6, 4, 5)],
        lambda: Fn(lambda x: x.view(x.shape[0], 3, 2, 4, 5).transpose(1, 2).reshape(x.shape)),
    ),
    "channel_slice": (
        {"start": 2, "stop": 5},
        [(6, 4, 5)],
        lambda: Fn(lambda x: torch.split(x, [2, 3, 1], dim=1)[1]),
    ),
    # K1: gated activations and the broadcast product.
    "silu": (None, [(3, 4)], lambda: Fn(lambda x: x * torch.sigmoid(x))),
    "hardswish": (None, [(3, 4)], lambda: Fn(lambda x: x * F.relu6(x + 3) / 6)),
    "hardsigmoid": (None, [(3, 4)], lambda: Fn(lambda x: F.relu6(x + 3) / 6)),
    "gelu": ("tanh", [(3, 4)], lambda: nn.GELU(approximate="tanh")),
    "mish": (None, [(3, 4)], lambda: Fn(lambda x: x * torch.tanh(F.softplus(x)))),
    "mul": (None, [(4, 3, 5), (4, 1, 1), (1, 3, 5)], lambda: Fn(lambda a, b, c: a * b * c)),
    # issue 13 (K2): norms and ConvNeXt's training-only kinds
    "groupnorm": (2, [(6, 5, 5)], lambda: nn.GroupNorm(2, 6)),
    "instancenorm": (
        {"affine": True, "track": True},
        [(4, 7)],
        lambda: nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
    ),
    "layernorm": (None, [(6, 4, 5)], lambda: ConvNeXtLayerNorm2d(6, eps=1e-6)),
    "drop_path": (0.3, [(4, 5)], lambda: nn.Identity()),
    "layer_scale": (None, [(6, 4, 4)], lambda: ConvNeXtLayerScale(6)),
    # resampling: interpolation to a scale or a reference's size, pixel (un)shuffle
    "upsample": (
        {"mode": "bilinear", "scale": [2, 1.5]},
        [(3, 5, 7)],
        lambda: Fn(lambda x: F.interpolate(x, scale_factor=(2.0, 1.5), mode="bilinear")),
    ),
    "pixel_shuffle": (2, [(8, 3, 5)], lambda: nn.PixelShuffle(2)),
    "pixel_unshuffle": (2, [(2, 4, 6)], lambda: nn.PixelUnshuffle(2)),
}


class ConvNeXtLayerNorm2d(nn.LayerNorm):
    """torchvision's ConvNeXt LayerNorm2d, as its source writes it (NCHW, 2-D only)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtLayerScale(nn.Module):
    """The layer_scale parameter of torchvision's CNBlock: (C, 1, 1), times the branch."""

    def __init__(self, dim: int, value: float = 1e-6) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * value)

    def forward(self, x):
        return self.layer_scale * x


# Kinds whose built module computes exactly the oracle once the oracle's weights are copied.
SAME_STATE = {"conv", "convtranspose", "linear", "bn", "prelu"}
SAME_STATE |= {"groupnorm", "instancenorm", "layernorm", "layer_scale"}  # issue 13 (K2)
DETERMINISTIC = {
    "maxpool",
    "avgpool",
    "adaptive_avgpool",
    "adaptive_maxpool",
    "global_avgpool",
    "global_maxpool",
    "flatten",
    "lrn",
    "relu",
    "relu6",
    "sigmoid",
    "tanh",
    "scaled_tanh",
    "leaky_relu",
    "elu",
    "maxout",
    "softmax",
    "log_softmax",
    "identity",
    "add",
    "concat",
    "silu",
    "hardswish",
    "hardsigmoid",
    "gelu",
    "mish",
    "mul",
    "upsample",
    "pixel_shuffle",
    "pixel_unshuffle",
}
DETERMINISTIC |= {"drop_path"}  # issue 13 (K2): eval is the identity


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_rows_builder_reference_resolves_to_a_callable(name):
    from cnnkit.model.builders import resolve

    reference = LAYERS[name].builder
    assert reference.startswith("cnnkit.model.builders:"), reference
    assert callable(resolve(reference))
    assert BUILDERS[name] is resolve(reference)


def test_a_builder_reference_that_does_not_resolve_is_an_error():
    from cnnkit.model.builders import resolve

    for bad in ("cnnkit.model.builders:no_such_kind", "cnnkit.no_such_module:conv"):
        with pytest.raises(LookupError, match="does not resolve"):
            resolve(bad)
    with pytest.raises(LookupError, match="not callable"):
        resolve("cnnkit.model.builders:LAYERS")


def test_every_kind_has_an_oracle():
    assert set(CASES) == set(LAYERS)


def _count(module: nn.Module, what: str) -> int:
    if isinstance(module, Fn):
        return module.n_params if what == "params" else module.n_buffers
    tensors = module.parameters() if what == "params" else module.buffers()
    return sum(t.numel() for t in tensors)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_kind_matches_its_torch_oracle(name):
    value, in_shapes, oracle_factory = CASES[name]
    kind = LAYERS[name]
    args = kind.resolve(value)
    ins = tuple(in_shapes)
    shape = kind.shape(args, ins)
    counts = kind.count(args, ins, shape)
    torch.manual_seed(0)
    oracle = oracle_factory()
    xs = (
        [torch.randint(0, 50, (1, *s)) for s in ins]
        if name == "embedding"
        else [torch.randn(1, *s) for s in ins]
    )
    built = BUILDERS[name](args, ins, shape).eval()
    oracle.eval()
    with torch.no_grad():
        theirs = oracle(*xs)
        ours = built(*xs)
    assert shape == tuple(theirs.shape[1:]) == tuple(ours.shape[1:])
    assert counts.params == _count(oracle, "params") == _count(built, "params")
    assert counts.buffers == _count(oracle, "buffers") == _count(built, "buffers")
    assert counts.activations == math.prod(shape)
    if name in SAME_STATE:
        built.load_state_dict(oracle.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(built(*xs), oracle(*xs))
    elif name in DETERMINISTIC:
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_receptive_field_rule_is_well_formed(name):
    value, in_shapes, _ = CASES[name]
    kind = LAYERS[name]
    args = kind.resolve(value)
    rf = kind.rf(args, tuple(in_shapes))
    if isinstance(rf, Window):
        dims = len(in_shapes[0]) - 1
        assert len(rf.kernel) == len(rf.stride) == len(rf.pad_before) == len(rf.dilation) == dims
    elif isinstance(rf, Resampled):
        assert rf.spans is not None and len(rf.spans) == len(in_shapes[0]) - 1, rf.reason
    else:
        assert rf is None or rf is SEES_ALL


def test_subsample_computes_coefficient_times_window_sum_plus_bias():
    kind = LAYERS["subsample"]
    args = kind.resolve(2)
    module = BUILDERS["subsample"](args, ((2, 4, 4),), (2, 2, 2))
    with torch.no_grad():
        module.weight.copy_(torch.tensor([2.0, -1.0]))
        module.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    expected = F.avg_pool2d(x, 2) * 4 * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    expected += torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(module(x), expected)


def test_partial_conv_equals_a_masked_dense_conv():
    kind = LAYERS["partial_conv"]
    args = kind.resolve({"table": TABLE, "k": 3})
    module = BUILDERS["partial_conv"](args, ((4, 9, 9),), (4, 7, 7))
    dense = torch.zeros(4, 4, 3, 3)
    for n, (j, i) in enumerate(zip(module.rows, module.cols)):
        dense[j, i] = module.weight.detach()[n]
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(module(x), F.conv2d(x, dense, module.bias))
    for j, row in enumerate(TABLE):
        assert [i for r, i in zip(module.rows, module.cols) if r == j] == row


def test_rbf_outputs_squared_distances_to_fixed_prototypes():
    module = BUILDERS["rbf"](LAYERS["rbf"].resolve(3), ((5,),), (3,))
    assert not list(module.parameters())
    x = torch.randn(2, 5)
    expected = torch.cdist(x, module.prototypes) ** 2
    torch.testing.assert_close(module(x), expected)
    assert set(module.prototypes.unique().tolist()) <= {-1.0, 1.0}


def test_same_padding_with_stride_uses_tensorflow_rule():
    kind = LAYERS["conv"]
    args = kind.resolve({"out": 2, "k": 3, "s": 2, "p": "same"})
    shape = kind.shape(args, ((1, 7, 8),))
    assert shape == (2, 4, 4)
    module = BUILDERS["conv"](args, ((1, 7, 8),), shape)
    assert tuple(module(torch.zeros(1, 1, 7, 8)).shape[1:]) == shape
    assert set(dict(module.named_parameters())) == {"weight", "bias"}


def test_transposed_macs_are_counted_per_input_pixel():
    kind = LAYERS["convtranspose"]
    args = kind.resolve({"out": 3, "k": 4, "s": 2})
    shape = kind.shape(args, ((2, 5, 5),))
    assert kind.count(args, ((2, 5, 5),), shape).macs == 2 * 25 * 3 * 16
