"""Output shape of every node (without the batch), inferred when the graph was assembled."""

from __future__ import annotations

from cnnkit.layers import Shape
from cnnkit.recipe.graph import INPUT, Graph


def shapes(graph: Graph) -> dict[str, Shape]:
    """``{"input": input shape, node name: output shape, ...}`` in topological order."""
    return {INPUT: graph.input_shape, **{n.name: n.shape for n in graph.nodes}}
