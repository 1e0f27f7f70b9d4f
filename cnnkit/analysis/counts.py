"""Parameters, buffers, MACs, all-ops and activation elements per node, from each kind's
count rule (see ``cnnkit.layers``). Weight sharing is not part of the recipe language, so
every node owns its parameters and the totals are plain sums. ``Counts.params`` counts every
parameter, frozen (``trainable: false``) or not; ``frozen_params`` says how many are frozen."""

from __future__ import annotations

from functools import reduce

from cnnkit.layers import LAYERS, Counts
from cnnkit.recipe.graph import Graph


def node_counts(graph: Graph) -> dict[str, Counts]:
    """Counts of every node, keyed by node name, in topological order."""
    return {
        n.name: LAYERS[n.kind].count(n.args, graph.input_shapes(n), n.shape) for n in graph.nodes
    }


def totals(graph: Graph) -> Counts:
    """The sum over all nodes."""
    return reduce(lambda a, b: a + b, node_counts(graph).values(), Counts())


def frozen_params(graph: Graph) -> int:
    """Parameters of ``trainable: false`` nodes: stored and counted, but never updated."""
    counts = node_counts(graph)
    return sum(counts[n.name].params for n in graph.nodes if not n.trainable)
