"""Torch modules of the ConvNeXt-style kinds: layer norm over channels, drop path, layer scale.

Parameter names follow torchvision's ConvNeXt (``weight``/``bias`` of its LayerNorm2d,
``layer_scale`` of shape (C, 1, 1) in CNBlock) so its weights load by name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LayerNormChannels(nn.LayerNorm):
    """ConvNeXt's LayerNorm2d, for any number of spatial axes: channels-last, normalise over
    C, channels-first again (an nn.LayerNorm subclass, so the keys are weight and bias)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class DropPath(nn.Module):
    """Stochastic depth per sample: keep each sample with probability 1 - p (divided by it
    when ``scale_by_keep``) while training; the identity in eval or when p = 0."""

    def __init__(self, p: float, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.p = p
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, scale_by_keep={self.scale_by_keep}"


class LayerScale(nn.Module):
    """gamma * x with one learnable gamma per channel, ``layer_scale`` of shape (C, 1, ...)
    like torchvision's CNBlock (shape (C,) on vectors)."""

    def __init__(self, channels: int, rank: int, init: float) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((channels,) + (1,) * (rank - 1), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * x
