"""The torch builders of the layer kinds: one function per kind, named by its registry row.

Each ``LayerKind`` names its builder as ``"cnnkit.model.builders:NAME"``; ``BUILDERS`` is
derived from those references (so the table cannot drift from the registry) when the torch
side is imported. A builder takes the validated args, the input shapes and the output shape
(no batch) and returns an ``nn.Module``. Geometry comes from the pure side
(``cnnkit.layers._geometry``), never re-derived here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from cnnkit.layers import LAYERS
from cnnkit.layers._geometry import axes, conv_window, pool_window
from cnnkit.model import modules as m
from cnnkit.model import norm_modules as nm

Shape = tuple[int, ...]
Builder = Callable[[Mapping[str, Any], tuple[Shape, ...], Shape], nn.Module]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_PADDED_CONV = {1: m.PaddedConv1d, 2: m.PaddedConv2d, 3: m.PaddedConv3d}
_CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_ADAPTIVE_MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}


def conv(args, ins, out) -> nn.Module:
    k, s, pads, d = conv_window(args, ins[0], "conv")
    dims = len(k)
    common = dict(stride=s, dilation=d, groups=args["groups"], bias=args["bias"])
    if all(lo == hi for lo, hi in pads):
        return _CONV[dims](ins[0][0], args["out"], k, padding=tuple(p for p, _ in pads), **common)
    layer = _PADDED_CONV[dims](ins[0][0], args["out"], k, padding=0, **common)
    layer.pre_pad = tuple(v for pad in reversed(pads) for v in pad)  # F.pad: last axis first
    return layer


def convtranspose(args, ins, out) -> nn.Module:
    dims = len(ins[0]) - 1
    return _CONVT[dims](
        ins[0][0],
        args["out"],
        axes(args["kernel"], dims, "kernel"),
        stride=axes(args["stride"], dims, "stride"),
        padding=axes(args["padding"], dims, "padding"),
        output_padding=axes(args["output_padding"], dims, "output_padding"),
        groups=args["groups"],
        bias=args["bias"],
        dilation=axes(args["dilation"], dims, "dilation"),
    )


def maxpool(args, ins, out) -> nn.Module:
    k, s, p, d = pool_window(args, ins[0], "maxpool")
    return _MAXPOOL[len(k)](k, s, p, d, ceil_mode=args["ceil_mode"])


def avgpool(args, ins, out) -> nn.Module:
    k, s, p, _ = pool_window(args, ins[0], "avgpool")
    return _AVGPOOL[len(k)](
        k, s, p, ceil_mode=args["ceil_mode"], count_include_pad=args["count_include_pad"]
    )


def adaptive_avgpool(a, ins, out) -> nn.Module:
    return _ADAPTIVE_AVG[len(out) - 1](out[1:])


def adaptive_maxpool(a, ins, out) -> nn.Module:
    return _ADAPTIVE_MAX[len(out) - 1](out[1:])


def global_avgpool(a, ins, out) -> nn.Module:
    return m.GlobalPool("avg")


def global_maxpool(a, ins, out) -> nn.Module:
    return m.GlobalPool("max")


def linear(a, ins, out) -> nn.Module:
    if a["over"] == "channels":
        return nm.LinearChannels(ins[0][0], a["out"], bias=a["bias"])
    return nn.Linear(ins[0][0], a["out"], bias=a["bias"])


def flatten(a, ins, out) -> nn.Module:
    return nn.Flatten()


def embedding(a, ins, out) -> nn.Module:
    return m.ChannelsFirstEmbedding(a["vocab"], a["dim"], padding_idx=a["padding_idx"])


def bn(a, ins, out) -> nn.Module:
    return _BN[len(ins[0])](ins[0][0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


def lrn(a, ins, out) -> nn.Module:
    return nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])


def dropout(a, ins, out) -> nn.Module:
    return nn.Dropout(a["p"])


def relu(a, ins, out) -> nn.Module:
    return nn.ReLU()


def relu6(a, ins, out) -> nn.Module:
    return nn.ReLU6()


def sigmoid(a, ins, out) -> nn.Module:
    return nn.Sigmoid()


def tanh(a, ins, out) -> nn.Module:
    return nn.Tanh()


def scaled_tanh(a, ins, out) -> nn.Module:
    return m.ScaledTanh(a["a"], a["s"])


def leaky_relu(a, ins, out) -> nn.Module:
    return nn.LeakyReLU(a["slope"])


def prelu(a, ins, out) -> nn.Module:
    return nn.PReLU(out[0] if a["per_channel"] else 1, a["init"])


def rrelu(a, ins, out) -> nn.Module:
    return nn.RReLU(a["lower"], a["upper"])


def elu(a, ins, out) -> nn.Module:
    return nn.ELU(a["alpha"])


def maxout(a, ins, out) -> nn.Module:
    return m.Maxout(a["pieces"])


def softmax(a, ins, out) -> nn.Module:
    return nn.Softmax(dim=1)


def log_softmax(a, ins, out) -> nn.Module:
    return nn.LogSoftmax(dim=1)


def identity(a, ins, out) -> nn.Module:
    return nn.Identity()


def add(a, ins, out) -> nn.Module:
    return m.Merge("add")


def concat(a, ins, out) -> nn.Module:
    return m.Merge("concat")


def subsample(a, ins, out) -> nn.Module:
    return m.Subsample(ins[0][0], axes(a["kernel"], len(ins[0]) - 1, "kernel"))


def partial_conv(a, ins, out) -> nn.Module:
    kernel = axes(a["kernel"], len(ins[0]) - 1, "kernel")
    return m.PartialConv(ins[0][0], a["table"], kernel, a["bias"])


def rbf(a, ins, out) -> nn.Module:
    return m.EuclideanRBF(ins[0][0], a["out"])


def silu(a, ins, out) -> nn.Module:
    return nn.SiLU(a["inplace"])


def hardswish(a, ins, out) -> nn.Module:
    return nn.Hardswish(a["inplace"])


def hardsigmoid(a, ins, out) -> nn.Module:
    return nn.Hardsigmoid(a["inplace"])


def gelu(a, ins, out) -> nn.Module:
    return nn.GELU(approximate=a["approximate"])


def mish(a, ins, out) -> nn.Module:
    return nn.Mish(a["inplace"])


def mul(a, ins, out) -> nn.Module:
    return m.Product()


def channel_shuffle(a, ins, out) -> nn.Module:
    return nn.ChannelShuffle(a["groups"])


def channel_slice(a, ins, out) -> nn.Module:
    return m.ChannelSlice(a["start"], a["stop"])


# --- issue 13 (K2): group, instance and layer norm, drop_path, layer_scale ---------------
_IN = {2: nn.InstanceNorm1d, 3: nn.InstanceNorm2d, 4: nn.InstanceNorm3d}


def groupnorm(a, ins, out) -> nn.Module:
    return nn.GroupNorm(a["groups"], ins[0][0], eps=a["eps"], affine=a["affine"])


def instancenorm(a, ins, out) -> nn.Module:
    return _IN[len(ins[0])](
        ins[0][0],
        eps=a["eps"],
        momentum=a["momentum"],
        affine=a["affine"],
        track_running_stats=a["track_running_stats"],
    )


def layernorm(a, ins, out) -> nn.Module:
    if a["over"] == "channels" and len(ins[0]) > 1:
        return nm.LayerNormChannels(ins[0][0], eps=a["eps"], elementwise_affine=a["affine"])
    return nn.LayerNorm(ins[0][-1], eps=a["eps"], elementwise_affine=a["affine"])


def drop_path(a, ins, out) -> nn.Module:
    return nm.DropPath(a["p"], a["scale_by_keep"])


def layer_scale(a, ins, out) -> nn.Module:
    return nm.LayerScale(ins[0][0], len(ins[0]), a["init"])


# --- resampling: upsample, pixel shuffle -----------------------------------------------


def upsample(a, ins, out) -> nn.Module:
    if len(ins) == 2:
        return m.ResizeLike(a["mode"], a["align_corners"])
    return nn.Upsample(
        size=a["size"],
        scale_factor=a["scale"],
        mode=a["mode"],
        align_corners=a["align_corners"],
    )


def pixel_shuffle(a, ins, out) -> nn.Module:
    return nn.PixelShuffle(a["factor"])


def pixel_unshuffle(a, ins, out) -> nn.Module:
    return nn.PixelUnshuffle(a["factor"])


def resolve(reference: str) -> Builder:
    """The callable a row's ``builder`` reference (``"package.module:function"``) names."""
    module_name, _, attribute = reference.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise LookupError(f"builder {reference!r} does not resolve: {err}") from None
    if not callable(found):
        raise LookupError(f"builder {reference!r} is not callable")
    return found


# Derived from the registry rows, not mirrored: a kind without a builder fails here, at import.
BUILDERS: dict[str, Builder] = {name: resolve(kind.builder) for name, kind in LAYERS.items()}
