"""The documented ``--json`` documents as plain data: the library API behind every command.

``cnnkit.reports.params_report(recipe, batch=8)`` returns exactly what
``cnnkit params RECIPE --batch 8 --json`` prints, without a CLI. Each name is loaded on first
use, so importing this package costs nothing and the pure reports (conv, rf, params on a
recipe) never import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "conv_report": "cnnkit.reports.conv",
    "numeric_report": "cnnkit.reports.conv",
    "rf_report": "cnnkit.reports.rf",
    "params_report": "cnnkit.reports.params",
    "recipes_report": "cnnkit.reports.recipes",
    "profile_report": "cnnkit.reports.profile",
    "eval_report": "cnnkit.reports.evaluate",
    "train_summary": "cnnkit.reports.train",
    "sweep_summary": "cnnkit.reports.train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit.reports' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
