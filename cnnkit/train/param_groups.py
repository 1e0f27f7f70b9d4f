"""Which parameters get weight decay: by default not biases and normalisation weights.

Decaying a bias or a batch-/layer-norm scale towards 0 does not regularise the function the
way decaying a weight matrix does; it only shifts or shrinks activations (and a norm layer's
scale is undone by the next layer). timm's ``param_groups_weight_decay`` therefore leaves out
every parameter with ``ndim <= 1`` (biases, norm weights and biases), and so does cnnkit unless
``train.weight_decay_norm_bias: true``, which decays every parameter alike (as cnnkit 0.1.0 did).
"""

from __future__ import annotations

from typing import Any

import torch


def param_groups(module: torch.nn.Module, weight_decay: float, decay_all: bool) -> list[Any]:
    """The optimiser's parameter groups: ``[decayed, not decayed]`` (empty ones dropped), or
    one group of every trainable parameter when ``decay_all`` or there is no decay at all."""
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if decay_all or weight_decay == 0:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    decay = [p for _, p in params if p.ndim > 1]
    keep = [p for _, p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
