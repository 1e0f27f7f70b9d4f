"""The parity check after an export: the exported file against the model it came from.

Both run in float32 on the CPU, the file in its own runtime; the figure is the largest
absolute difference over every output value. It passes when that is at most ``tolerance``
times max(1, the largest absolute output): absolute for outputs of order 1 (logits of a
trained model), relative for large ones (a randomly initialised deep network's outputs can
reach 1e5, where float32 itself rounds by 1e-2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

TOLERANCE = 1e-4  # float32 kernels of two runtimes differ by ~1e-6 per value; 100x headroom
RANDOM_BATCHES = (1, 3)  # 1 and 3: neither is the example batch (2) the export saw


def random_batch(shape: tuple[int, ...], batch: int, vocab: int | None, seed: int) -> torch.Tensor:
    """A seeded batch of the model's input: N(0, 1) images or signals (what normalised data
    looks like), or token ids below ``vocab`` for a model whose input is token ids."""
    g = torch.Generator().manual_seed(seed)
    if vocab is not None:
        return torch.randint(0, vocab, (batch, *shape), generator=g)
    return torch.randn(batch, *shape, generator=g)


def compare(
    model: torch.nn.Module, run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> dict[str, Any]:
    """One batch through both: the largest difference and the largest output."""
    with torch.no_grad():
        expected = model(x).float()
        got = run(x).float()
    if got.shape != expected.shape:
        return {
            "batch": len(x),
            "max_abs_diff": float("inf"),
            "max_abs_output": float(expected.abs().max()),
            "shape": list(got.shape),
        }
    return {
        "batch": len(x),
        "max_abs_diff": float((got - expected).abs().max()),
        "max_abs_output": float(expected.abs().max()),
        "shape": list(got.shape),
    }


def check(
    model: torch.nn.Module,
    run: Callable[[torch.Tensor], torch.Tensor],
    random: list[torch.Tensor],
    real: torch.Tensor | None,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Every batch compared; ``passed`` when each is within ``tolerance`` (see the module)."""
    rows = [compare(model, run, x) for x in random]
    real_row = compare(model, run, real) if real is not None and len(real) else None
    every = [*rows, *([real_row] if real_row else [])]
    worst = max(r["max_abs_diff"] for r in every)
    passed = all(r["max_abs_diff"] <= tolerance * max(1.0, r["max_abs_output"]) for r in every)
    return {
        "tolerance": tolerance,
        "rule": "max_abs_diff <= tolerance * max(1, max_abs_output), per batch",
        "random": rows,
        "real": real_row,
        "max_abs_diff": worst,
        "passed": passed,
    }
