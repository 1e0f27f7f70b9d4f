"""The checks of ``train.mixup``/``cutmix``, ``class_weights`` and ``sync_bn`` that need the
loaded data or the process group: run once before the run folder is written, so a setting
that cannot train is one line and exit code 2 with nothing on disk."""

from __future__ import annotations

from typing import Any

import torch

from cnnkit.train.class_weights import class_weights
from cnnkit.train.config import TrainConfig
from cnnkit.train.mixing import check_mixing
from cnnkit.train.runtime import World
from cnnkit.train.syncbn import check_sync_bn


def check_before_training(c: TrainConfig, data: Any, world: World, device: torch.device) -> None:
    """Raise the one-line ``InputError`` of the first setting this data or world refuses."""
    check_mixing(c, tuple(data.input_shape), not data.train.head(1).is_floating_point())
    class_weights(c, data)
    check_sync_bn(c, world, device)
