"""Mid-epoch checkpoints (``train.checkpoint_every: N``) that resume at their step exactly.

An epoch's data order is a pure function of (seed, epoch), but its augmentation draws and
dropout masks come from generators that advance with every batch. A mid-epoch ``last.pt``
therefore carries, besides the weights and optimiser state, a ``partial`` record: the epoch
and optimiser steps done in it, the epoch's running sums (loss, correct, images, gradient
norms), its first learning rate (the metrics row's ``lr``), and the states of the
augmentation generator and the global RNG (CPU, and the device's). A resume restores them
and continues at the next step, so the run is the uninterrupted one to the last bit; runs
without ``checkpoint_every`` draw exactly as before. Under ``torchrun`` it is refused (every
rank's random state would have to be gathered).
"""

from __future__ import annotations

from typing import Any

import torch


def rng_states(g: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """The random state an epoch's remaining steps depend on (CPU tensors, ``weights_only``)."""
    states = {"augment": g.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def restore_rng(states: dict[str, torch.Tensor], g: torch.Generator, device: torch.device) -> None:
    g.set_state(states["augment"])
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    if "mps" in states and device.type == "mps":
        torch.mps.set_rng_state(states["mps"])


def partial_record(
    epoch: int,
    step: int,
    lr: float,
    sums: tuple[torch.Tensor, torch.Tensor, int],
    grad_norms: torch.Tensor | None,
    rng: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """The ``partial`` entry of a mid-epoch checkpoint: ``step`` optimiser steps of ``epoch``
    (0-based) are done."""
    loss_sum, correct, seen = sums
    return {
        "epoch": epoch,
        "step": step,
        "lr": lr,
        "loss_sum": loss_sum.detach().cpu().clone(),
        "correct": correct.detach().cpu().clone(),
        "seen": seen,
        "grad_norms": grad_norms.detach().cpu().clone() if grad_norms is not None else None,
        "rng": rng,
    }
