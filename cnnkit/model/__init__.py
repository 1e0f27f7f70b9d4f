"""The model: recipe graph to torch module (the builders each registry row names, the graph
module, initialisation).

This package, `cnnkit.measure` and the torch parts of `cnnkit.train` import torch at module
level; the pure side never does (ruff's TID253 and tests/test_pure_imports.py enforce it).
"""

from __future__ import annotations

from cnnkit.model.build import build, build_external, example_input
from cnnkit.model.builders import BUILDERS
from cnnkit.model.network import GraphModule

__all__ = ["BUILDERS", "GraphModule", "build", "build_external", "example_input"]
