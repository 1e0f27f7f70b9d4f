"""``cnnkit train --tensorboard``: each epoch's metrics.csv row as TensorBoard scalars.

The log goes to ``RUN/tensorboard/`` beside ``metrics.csv`` (``tensorboard --logdir runs``
shows every run), one scalar per numeric column at step = epoch. It is written as each
``last.pt`` is saved, from the same row; a resumed run purges the steps after its checkpoint
(a killed epoch trained again is not logged twice). TensorBoard is optional: without the
package, ``--tensorboard`` is one line before anything is trained.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError

FOLDER = "tensorboard"
MISSING = (
    "--tensorboard needs the tensorboard package, which is not installed: "
    "pip install tensorboard (or train without --tensorboard)"
)


def check_available() -> None:
    """Refuse ``--tensorboard`` up front when the package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError(MISSING)


def logging_saver(
    save: Callable[[str, dict[str, Any]], None], run: Path, epoch: int
) -> tuple[Callable[[str, dict[str, Any]], None], Callable[[], None]]:
    """``save`` that also logs the epoch row of every ``last`` checkpoint, and a ``close``;
    ``epoch`` is the checkpoint's epoch when resuming (later steps are purged)."""
    check_available()
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / FOLDER), purge_step=epoch + 1)  # also an --overwrite's

    def logged(kind: str, payload: dict[str, Any]) -> None:
        save(kind, payload)
        if kind == "last" and payload["state"]["history"]:
            row = payload["state"]["history"][-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and value is not None:
                    writer.add_scalar(key, float(value), row["epoch"])
            writer.flush()

    return logged, writer.close
