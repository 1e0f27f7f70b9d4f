"""Weight initialisation schemes (``init:`` per model or per layer), applied per node.

Every scheme sets biases to zero and batch-norm scales to one (shifts to zero), and fills
weight tensors of rank >= 2 by its rule; other tensors (PReLU slopes, LeNet subsampling
coefficients) keep their construction-time values. ``default`` keeps PyTorch's own
initialisation; ``torchvision`` is the rule torchvision's VGG, ResNet and DenseNet use:
Kaiming-normal (fan_out, ReLU) convolutions, normal(0, 0.01) linear layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

WeightRule = Callable[[torch.Tensor], object]


def _torchvision(module: nn.Module, weight: torch.Tensor) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(weight, 0, 0.01)
    else:
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")


RULES: dict[str, WeightRule] = {
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "normal": lambda w: nn.init.normal_(w, 0, 0.01),
    "orthogonal": nn.init.orthogonal_,
    "zeros": nn.init.zeros_,
}
SCHEMES = ("default", "torchvision", *RULES)


@torch.no_grad()
def initialise(module: nn.Module, scheme: str) -> None:
    """Apply ``scheme`` to one node's module (its direct parameters)."""
    if scheme == "default":
        return
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        return
    for name, param in module.named_parameters(recurse=False):
        if name == "bias":
            nn.init.zeros_(param)
        elif param.dim() >= 2:
            if scheme == "torchvision":
                _torchvision(module, param)
            else:
                RULES[scheme](param)
