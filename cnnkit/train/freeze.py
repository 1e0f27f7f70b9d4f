"""``train.freeze`` (``--freeze PREFIX``): parameters under a state_dict key prefix get no
gradient, so the optimiser (``make_optimizer`` takes only ``requires_grad`` parameters) and
its weight decay leave them as loaded.

Prefixes are matched on ``state_dict`` keys, the names a weights file uses (a layer-scale
parameter is keyed by its layer's name, ``stages.1.0.ls``, not ``...ls.layer_scale``), and on
parameter names as well. A frozen batch-norm layer also keeps its running statistics: it
normalises with them in training as in evaluation, as timm's ``freeze`` does; otherwise its
"frozen" output would still drift with every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cnnkit.errors import RecipeError
from cnnkit.train.init_from import under
from cnnkit.validation import did_you_mean

if TYPE_CHECKING:
    import torch


class KeepStatistics:
    """A forward pre-hook: the batch-norm layer runs in eval mode whatever ``train()`` said.
    A class, not a closure, so the model still pickles."""

    def __call__(self, module: torch.nn.Module, args: Any) -> None:
        module.training = False


def freeze(module: torch.nn.Module, prefixes: Sequence[str], where: str) -> dict[str, Any]:
    """Freeze every parameter under ``prefixes``; returns ``{prefixes, tensors, params}``
    (what is frozen in all, ``trainable: false`` layers of the recipe included)."""
    import torch

    state = module.state_dict(keep_vars=True)
    named = {**state, **dict(module.named_parameters())}
    for prefix in prefixes:
        clean = prefix.strip(".")
        hits = [t for k, t in named.items() if under(k, clean)]
        if not hits:
            raise RecipeError(_unknown(clean, list(state)), where=f"{where}: train.freeze")
        for tensor in hits:
            if isinstance(tensor, torch.nn.Parameter):
                tensor.requires_grad_(False)
    for name, child in module.named_modules():
        norm = isinstance(child, torch.nn.modules.batchnorm._BatchNorm)
        if norm and any(under(name, p.strip(".")) for p in prefixes):
            child.register_forward_pre_hook(KeepStatistics())
    frozen = [p for p in module.parameters() if not p.requires_grad]
    return {
        "prefixes": list(prefixes),
        "tensors": len(frozen),
        "params": sum(p.numel() for p in frozen),
    }


def _unknown(prefix: str, keys: list[str]) -> str:
    """No key lies under ``prefix``: the nearest key prefix, and the model's top-level names."""
    stems = {k.rsplit(".", i)[0] for k in keys for i in range(k.count(".") + 1)}
    top = list(dict.fromkeys(k.split(".")[0] for k in keys))
    shown = ", ".join(top[:8]) + (", ..." if len(top) > 8 else "")
    return f"{prefix!r} matches no state_dict key{did_you_mean(prefix, stems)}; top-level: {shown}"
