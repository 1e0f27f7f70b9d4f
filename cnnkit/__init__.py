"""cnnkit: exact arithmetic, analysis, training and profiling for convolutional networks.

``cnnkit.load_recipe`` and ``cnnkit.build`` are loaded on first use, so ``import cnnkit``
stays free of torch (the CLI's fast commands depend on that).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_recipe": "cnnkit.recipe",
    "apply_overrides": "cnnkit.recipe",
    "Recipe": "cnnkit.recipe",
    "build": "cnnkit.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
