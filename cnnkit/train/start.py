"""What a run starts from besides its seeded initialisation: ``train.init_from`` weights and
``train.freeze`` prefixes, applied to the freshly built model before training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.train.config import TrainConfig

if TYPE_CHECKING:
    import torch


def start_model(
    module: torch.nn.Module,
    train: TrainConfig,
    where: str,
    resume_dir: Path | None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Load ``init_from`` (not when the run resumes from its ``last.pt``: the run's own weights
    win, and the source may be gone) and freeze; returns the summary's ``init_from`` and
    ``frozen`` entries (a resumed run takes ``init_from`` from its checkpoint)."""
    from cnnkit.train import runs
    from cnnkit.train.freeze import freeze
    from cnnkit.train.init_from import apply_init, init_line

    found: dict[str, Any] = {}
    resuming = resume_dir is not None and (resume_dir / runs.LAST).is_file()
    if train.init_from is not None and not resuming:
        found["init_from"] = apply_init(module, train.init_from, train.init_partial)
        found["init_from"]["frozen"] = list(train.freeze)
        if on_note is not None:
            on_note(init_line(found["init_from"]))
    if train.freeze:
        found["frozen"] = frozen = freeze(module, train.freeze, where)
        if on_note is not None:
            on_note(
                f"frozen: {frozen['params']:,} parameters in {frozen['tensors']} tensors "
                f"(under {', '.join(train.freeze)}); {trainable_params(module):,} train"
            )
    return found


def trainable_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
