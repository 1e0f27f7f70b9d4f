"""Torch modules of the ConvNeXt-style kinds: layer norm and linear over channels, drop path,
layer scale.

Parameter names follow torchvision's ConvNeXt (``weight``/``bias`` of its LayerNorm2d,
``layer_scale`` of shape (C, 1, 1) in CNBlock) so its weights load by name.
"""

from __future__ import annotations

from typing import Any

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


class LinearChannels(nn.Linear):
    """nn.Linear on the channel vector at every position (ConvNeXt's channels-last
    pointwise layers): keys weight (out, in) and bias, as torchvision's CNBlock has them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


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
    like torchvision's CNBlock (shape (C,) on vectors). Inside a network its state_dict key
    is the layer's own name (``OwnKey``): torchvision's CNBlock and timm's ConvNeXt keep the
    parameter on the block itself (``features.1.0.layer_scale``, ``stages.0.blocks.0.gamma``),
    not in a submodule of its own."""

    own_key = "layer_scale"  # the parameter that takes the layer's name

    def __init__(self, channels: int, rank: int, init: float) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((channels,) + (1,) * (rank - 1), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * x


class OwnKey:
    """state_dict hooks of a parent module that store child ``leaf``'s parameter ``param``
    under the child's own key (``block.leaf``, not ``block.leaf.param``): saving renames the
    key in place, in order; loading renames it back before the children read their keys, and
    names the own key in torch's missing and unexpected keys, so a strict load checks exactly
    the saved keys. A class, not closures, so a module holding it still pickles."""

    def __init__(self, leaf: str, param: str) -> None:
        self.outer, self.inner = leaf, f"{leaf}.{param}"
        self.prefix = ""

    @staticmethod
    def attach(parent: nn.Module, leaf: str, param: str) -> None:
        hooks = OwnKey(leaf, param)
        parent.register_state_dict_post_hook(_Saving(hooks))
        parent.register_load_state_dict_pre_hook(hooks.loading)
        parent.register_load_state_dict_post_hook(hooks.loaded)

    def loading(self, module: nn.Module, state: dict, prefix: str, *rest: Any) -> None:
        strict, unexpected = rest[1], rest[3]
        self.prefix = prefix
        outer, inner = prefix + self.outer, prefix + self.inner
        if inner in state and strict:
            unexpected.append(inner)  # the child's own layout is not this layer's key
        if outer in state:
            state[inner] = state.pop(outer)
        else:
            state.pop(inner, None)

    def loaded(self, module: nn.Module, incompatible: Any) -> None:
        inner = self.prefix + self.inner
        keys = incompatible.missing_keys
        if inner in keys:
            keys[keys.index(inner)] = self.prefix + self.outer


class _Saving:
    """The saving half of ``OwnKey`` (torch marks a state_dict post-hook with an attribute,
    which a bound method cannot take)."""

    def __init__(self, hooks: OwnKey) -> None:
        self.hooks = hooks

    def __call__(self, module: nn.Module, state: dict, prefix: str, metadata: Any) -> None:
        source, target = prefix + self.hooks.inner, prefix + self.hooks.outer
        if source in state:
            items = [(target if key == source else key, value) for key, value in state.items()]
            state.clear()  # in place: a post-hook may not return a new dict
            state.update(items)
