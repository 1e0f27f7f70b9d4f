"""``train.class_weights``: per-class weights of the training cross-entropy.

``balanced`` is scikit-learn's ``compute_class_weight("balanced")`` on the train split,
``n / (K * count_k)``: images for ``classify``, scored pixels (``data.ignore_index`` left out)
for ``segment``. A list gives one weight per class. Validation and test losses stay the plain,
unweighted criterion (as with label smoothing), so they mean the same whatever the recipe
weighted; the weights used are kept in ``summary.json`` (``class_weights``).
"""

from __future__ import annotations

from typing import Any

import torch

from cnnkit.errors import InputError
from cnnkit.train.config import TrainConfig
from cnnkit.train.data.segment import IGNORE


def class_weights(c: TrainConfig, data: Any) -> torch.Tensor | None:
    """The weights (float64, on the CPU) for ``data``'s classes, or None when unset; a list
    of the wrong length, or a class the train split never shows under ``balanced``, is one
    line naming the key."""
    if c.class_weights is None:
        return None
    names = tuple(data.classes)
    if c.class_weights != "balanced":
        if len(c.class_weights) != len(names):
            listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise InputError(
                f"train.class_weights: {len(c.class_weights)} weights for {len(names)} "
                f"classes ({listed})"
            )
        return torch.tensor(c.class_weights, dtype=torch.float64)
    if data.task == "segment" and getattr(data, "cache", "memory") == "stream":
        raise InputError(
            "train.class_weights: balanced counts the train masks' pixels, which a streamed "
            "set does not hold in memory; give a list of weights or use data.cache: memory"
        )
    y = data.train.y.reshape(-1).cpu()
    y = y[y != IGNORE]
    counts = torch.bincount(y, minlength=len(names)).double()
    if (counts == 0).any():
        empty = names[int((counts == 0).nonzero()[0])]
        what = "pixel" if data.task == "segment" else "image"
        raise InputError(
            f"train.class_weights: balanced: class {empty!r} has no {what} in the train "
            "split, so its weight would be infinite; give a list of weights"
        )
    return len(y) / (len(names) * counts)


def weights_summary(c: TrainConfig, data: Any) -> dict[str, Any]:
    """``{"class_weights": [...]}`` for ``summary.json`` when the run weights its loss."""
    weights = class_weights(c, data)
    return {} if weights is None else {"class_weights": weights.tolist()}
