"""Gradient accumulation: ``train.accumulate: N`` micro-batches per optimiser step.

Each optimiser step sums the gradients of up to N micro-batches of ``train.batch_size`` images,
so the effective batch is ``N * batch_size`` while memory holds one micro-batch. Each
micro-batch's mean loss is weighted by its share of the group's images (``1/N`` when all are
full), so the step is the one a single batch of the whole group would take; the epoch's
trailing group (fewer micro-batches, or a short last one) is weighted by its own images and
steps too. The learning-rate schedule, EMA and ``checkpoint_every`` count optimiser steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    """The micro-batches of one optimiser step: their first positions in the epoch's order,
    and how many images they hold together."""

    starts: tuple[int, ...]
    images: int


def optimizer_steps(micro_steps: int, accumulate: int) -> int:
    """Optimiser steps in an epoch of ``micro_steps`` micro-batches (the last may be short)."""
    return math.ceil(micro_steps / accumulate)


def groups(images: int, batch: int, accumulate: int) -> list[Group]:
    """The epoch's optimiser steps over ``images`` in order, ``batch`` per micro-batch."""
    starts = list(range(0, images, batch))
    out = []
    for first in range(0, len(starts), accumulate):
        mine = tuple(starts[first : first + accumulate])
        out.append(Group(mine, min(images, mine[-1] + batch) - mine[0]))
    return out


def share(micro_images: int, group: Group) -> float:
    """The weight of a micro-batch's mean loss: its fraction of the group's images."""
    return micro_images / group.images
