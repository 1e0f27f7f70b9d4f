"""``train.sampler``: the epoch's draw of training images.

``shuffle`` (the default) is a permutation, every image once per epoch. ``balanced`` draws as
many images as the split holds, with replacement, image ``i`` with weight ``1 / count(y_i)``:
``torch.utils.data.WeightedRandomSampler``'s draw (``torch.multinomial``), so every class is
drawn equally often in expectation however rare it is. Both come from the epoch generator of
``(train.seed, epoch)``, the same on every rank (which then take their shares of it), so a
resumed run, and N processes, draw exactly what one uninterrupted process does.
"""

from __future__ import annotations

import torch


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Each image's draw weight, ``1 / count`` of its class (float64, as the sampler's)."""
    counts = torch.bincount(y)
    return 1.0 / counts[y].double()


def epoch_draw(sampler: str, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The indices of one epoch's images, in order, drawn with ``generator`` (on the CPU)."""
    if sampler == "balanced":
        weights = balanced_weights(y.cpu())
        return torch.multinomial(weights, len(weights), replacement=True, generator=generator)
    return torch.randperm(len(y), generator=generator)
