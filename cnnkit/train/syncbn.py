"""``train.sync_bn``: BatchNorm statistics computed over every process of a torchrun run.

``torch.nn.SyncBatchNorm`` all-gathers each batch's mean and variance in the forward pass,
and it runs on CUDA only: on the CPU (gloo), torch raises ``SyncBatchNorm expected input
tensor to be on GPU`` at the first training forward once a process group exists (a test
checks torch still does). So ``sync_bn`` is refused off CUDA under torchrun before anything
is trained, and with one process it changes nothing (the statistics are already the whole
batch's): the model keeps its BatchNorm layers.
"""

from __future__ import annotations

import torch

from cnnkit.errors import InputError
from cnnkit.train.config import TrainConfig
from cnnkit.train.runtime import World


def check_sync_bn(c: TrainConfig, world: World, device: torch.device) -> None:
    """One line, before training, for a ``sync_bn`` torch cannot run."""
    if c.sync_bn and world.size > 1 and device.type != "cuda":
        raise InputError(
            f"train.sync_bn: torch's SyncBatchNorm runs on CUDA only, and this run's "
            f"{world.size} processes train on {device.type}; set train.sync_bn: false"
        )


def convert_sync_bn(module: torch.nn.Module, c: TrainConfig, world: World) -> torch.nn.Module:
    """``module`` with every BatchNorm as a SyncBatchNorm when ``sync_bn`` applies (torchrun);
    the same module otherwise. Weights and buffers (so ``state_dict`` keys) are kept."""
    if not c.sync_bn or world.size == 1:
        return module
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
