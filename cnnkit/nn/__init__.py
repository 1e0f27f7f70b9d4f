"""The torch side: builders mirroring the layer registry, the graph module, initialisation.

Only this package imports torch at module level (ruff's TID253 enforces it).
"""

from __future__ import annotations

from cnnkit.nn.build import build, build_external, example_input
from cnnkit.nn.builders import BUILDERS
from cnnkit.nn.network import GraphModule

__all__ = ["BUILDERS", "GraphModule", "build", "build_external", "example_input"]
