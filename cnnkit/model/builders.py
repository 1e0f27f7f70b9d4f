"""The torch mirror of ``cnnkit.layers.LAYERS``: one builder per layer kind, same keys.

A builder takes the validated args, the input shapes and the output shape (no batch) and
returns an ``nn.Module``. Geometry comes from the pure side (``cnnkit.layers._geometry``),
never re-derived here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from cnnkit.layers._geometry import axes, conv_window, pool_window
from cnnkit.model import modules as m

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


def _activation(make: Callable[[Mapping[str, Any]], nn.Module]) -> Builder:
    return lambda args, ins, out: make(args)


BUILDERS: dict[str, Builder] = {
    "conv": conv,
    "convtranspose": convtranspose,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "adaptive_avgpool": lambda a, ins, out: _ADAPTIVE_AVG[len(out) - 1](out[1:]),
    "adaptive_maxpool": lambda a, ins, out: _ADAPTIVE_MAX[len(out) - 1](out[1:]),
    "global_avgpool": lambda a, ins, out: m.GlobalPool("avg"),
    "global_maxpool": lambda a, ins, out: m.GlobalPool("max"),
    "linear": lambda a, ins, out: nn.Linear(ins[0][0], a["out"], bias=a["bias"]),
    "flatten": lambda a, ins, out: nn.Flatten(),
    "embedding": lambda a, ins, out: m.ChannelsFirstEmbedding(
        a["vocab"], a["dim"], padding_idx=a["padding_idx"]
    ),
    "bn": lambda a, ins, out: _BN[len(ins[0])](
        ins[0][0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"]
    ),
    "lrn": _activation(lambda a: nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])),
    "dropout": _activation(lambda a: nn.Dropout(a["p"])),
    "relu": _activation(lambda a: nn.ReLU()),
    "relu6": _activation(lambda a: nn.ReLU6()),
    "sigmoid": _activation(lambda a: nn.Sigmoid()),
    "tanh": _activation(lambda a: nn.Tanh()),
    "scaled_tanh": _activation(lambda a: m.ScaledTanh(a["a"], a["s"])),
    "leaky_relu": _activation(lambda a: nn.LeakyReLU(a["slope"])),
    "prelu": lambda a, ins, out: nn.PReLU(out[0] if a["per_channel"] else 1, a["init"]),
    "rrelu": _activation(lambda a: nn.RReLU(a["lower"], a["upper"])),
    "elu": _activation(lambda a: nn.ELU(a["alpha"])),
    "maxout": _activation(lambda a: m.Maxout(a["pieces"])),
    "softmax": _activation(lambda a: nn.Softmax(dim=1)),
    "log_softmax": _activation(lambda a: nn.LogSoftmax(dim=1)),
    "identity": _activation(lambda a: nn.Identity()),
    "add": _activation(lambda a: m.Merge("add")),
    "concat": _activation(lambda a: m.Merge("concat")),
    "subsample": lambda a, ins, out: m.Subsample(
        ins[0][0], axes(a["kernel"], len(ins[0]) - 1, "kernel")
    ),
    "partial_conv": lambda a, ins, out: m.PartialConv(
        ins[0][0], a["table"], axes(a["kernel"], len(ins[0]) - 1, "kernel"), a["bias"]
    ),
    "rbf": lambda a, ins, out: m.EuclideanRBF(ins[0][0], a["out"]),
}
