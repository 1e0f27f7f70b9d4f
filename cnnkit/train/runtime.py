"""Where training runs: the device, and the process group when started by ``torchrun``.

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; cnnkit then uses PyTorch DDP with gloo
on CPU and nccl on CUDA. With one process every helper here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from cnnkit.errors import InputError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files and renders progress."""
        return self.rank == 0

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """All-reduce a tensor of sums (loss, correct, count) across processes."""
        if self.size > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def share(self, value: Any) -> Any:
        """Rank 0's value on every rank (the run folder name, a divergence message)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_world(device_name: str) -> World:
    """Join the process group if ``torchrun`` started us; else a world of one."""
    if not launched_by_torchrun():
        return World()
    if not dist.is_initialized():
        use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def end_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


_AVAILABLE = {
    "cuda": lambda: torch.cuda.is_available(),
    "mps": lambda: hasattr(torch.backends, "mps") and torch.backends.mps.is_available(),
    "cpu": lambda: True,
}


def pick_device(name: str, world: World = World(), option: str = "train.device") -> torch.device:
    """``auto`` prefers cuda, then mps, then cpu; an unknown or unavailable explicit choice is
    an error naming ``option`` (the recipe key or the command-line flag the name came from)."""
    if name == "auto":
        name = next(n for n in ("cuda", "mps", "cpu") if _AVAILABLE[n]())
    elif name not in _AVAILABLE:
        accepted = ", ".join(("auto", *_AVAILABLE))
        raise InputError(f"{option}: expected one of {accepted}, got {name!r}")
    elif not _AVAILABLE[name]():
        raise InputError(f"{option}: {name} is not available on this machine (try auto or cpu)")
    if name == "cuda":
        return torch.device("cuda", world.local_rank % max(1, torch.cuda.device_count()))
    return torch.device(name)
