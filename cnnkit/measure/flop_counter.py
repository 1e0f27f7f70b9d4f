"""torch's own FLOP counter, ``torch.utils.flop_counter.FlopCounterMode``, as the second
oracle of ``cnnkit params --verify`` (fvcore's last release is from 2022).

What it counts, read from ``torch/utils/flop_counter.py``: only the ops in its registry,
``aten.convolution`` (and the backend variants), ``mm``, ``addmm``, ``bmm``, ``baddbmm``,
the attention kernels and ``_scaled_mm``; every other op (pooling, batch norm, activations,
elementwise ``mul``/``sub``/``pow``, ``cdist``, upsampling) counts nothing. A convolution is
``2 * batch * prod(out spatial) * prod(weight shape)`` with the weight (out, in/groups, *k),
the bias ignored ("only multiplication is counted"); a transposed convolution uses the
*input* spatial size; ``addmm`` counts its ``mm`` only (the bias add is ignored), ``mm`` is
``2 * m * k * n``. Each is two FLOPs per multiply-accumulate, so FLOPs / 2 is cnnkit's MACs.
Counts are attributed to every module on the call stack (its ``ModuleTracker``), keyed by the
module path under the root's class name (``GraphModule.layer1.0.conv1``), plus ``Global``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

COUNTS = (
    "aten.convolution and its backend variants (bias ignored), mm, addmm (the mm only), bmm, "
    "baddbmm (the bmm only), attention kernels; nothing else (pooling, norms, activations, "
    "elementwise ops count 0); 2 FLOPs per multiply-accumulate, so MACs = FLOPs / 2"
)


@dataclass(frozen=True)
class FlopCounts:
    """FlopCounterMode's FLOPs per module path ('' is the root) and per op for the whole
    forward (``total``: everything it counted, inside modules or not). Kept in FLOPs and
    compared as ``2 * macs == flops``, so no halving can round a difference away."""

    per_module: dict[str, int]
    total: Counter

    def flops(self, name: str) -> int:
        return self.per_module.get(name, 0)

    @property
    def total_flops(self) -> int:
        return int(sum(self.total.values()))


def as_macs(flops: int) -> int | float:
    """FLOPs / 2, an int unless an op counted an odd number (then the half shows it)."""
    return flops // 2 if flops % 2 == 0 else flops / 2


def flop_counts(model: nn.Module, x: torch.Tensor) -> FlopCounts:
    """Run ``model(x)`` under FlopCounterMode (no printed table) and read its counts."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    found = counter.get_flop_counts()
    total = Counter({str(op): int(n) for op, n in found.get("Global", {}).items()})
    per_module: dict[str, int] = {}
    for path, ops in found.items():
        if path == "Global":
            continue
        _, _, name = path.partition(".")  # drop the root's class name: GraphModule.conv1
        per_module[name] = per_module.get(name, 0) + int(sum(ops.values()))
    return FlopCounts(per_module, total)
