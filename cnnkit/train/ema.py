"""An exponential moving average (EMA) of the weights, scored and saved beside them.

``train.ema: DECAY`` keeps a copy of the model whose floating-point state (parameters and
float buffers such as batch-norm running statistics) follows the trained one after every
optimiser step, ``ema = decay * ema + (1 - decay) * model`` (one ``torch._foreach_lerp_``);
integer buffers (``num_batches_tracked``) are copied. This is timm's ``ModelEmaV3`` with its
default ``exclude_buffers=False``, updated with the optimiser-step count as timm's train
script does: the first update copies the weights (decay 0), and with ``train.ema_warmup`` the
decay of update ``n`` is ``min(DECAY, 1 - n ** -2/3)`` (timm's warm-up, ``warmup_gamma`` 1,
``warmup_power`` 2/3), so the average is not dominated by the random initial weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

WARMUP_POWER = 2 / 3  # timm ModelEmaV3's default warmup_power (warmup_gamma 1)


def ema_decay(decay: float, updates: int, warmup: bool) -> float:
    """The decay of the ``updates``-th update (1-based), as timm's ``ModelEmaV3.get_decay``."""
    if updates <= 1:
        return 0.0
    if not warmup:
        return decay
    return max(0.0, min(decay, 1 - updates**-WARMUP_POWER))


class Ema:
    """The averaged copy of ``module`` (in eval mode) and the number of updates so far."""

    def __init__(self, module: torch.nn.Module, decay: float, warmup: bool = False) -> None:
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average towards ``model``'s current weights (after an optimiser step)."""
        self.updates += 1
        weight = 1.0 - ema_decay(self.decay, self.updates, self.warmup)
        mine, theirs = [], []
        for ema_v, model_v in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_v.is_floating_point():
                mine.append(ema_v)
                theirs.append(model_v.detach())
            else:
                ema_v.copy_(model_v)
        if mine:
            torch._foreach_lerp_(mine, theirs, weight)

    def state_dict(self) -> dict[str, Any]:
        """For checkpoints: the averaged weights and the update count (``weights_only``-safe)."""
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
