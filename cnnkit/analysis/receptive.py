"""Receptive fields of every node of a recipe graph, through any DAG.

Each node's fields come from its inputs' fields and its kind's receptive-field rule
(``LayerKind.rf``): a window moves every path's field forward (``arith.receptive``), a
pointwise kind passes it through, a merge (add, concat) keeps the union of its inputs'
paths, and a kind that reads its whole input (flatten, linear, global pooling) makes every
later field "global". Transposed convolutions upsample, which the algebra does not cover:
fields after one are reported as unknown rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.arith.receptive import Field, Fields
from cnnkit.layers import LAYERS, SEES_ALL, Window
from cnnkit.recipe.graph import INPUT, Graph, Node

UPSAMPLING = frozenset({"convtranspose"})


@dataclass(frozen=True)
class NodeField:
    """What one node's units see. Exactly one of: ``fields`` set, ``sees_all``, ``unknown``."""

    name: str
    kind: str
    output: tuple[int, ...]
    fields: Fields | None = None
    sees_all: bool = False  # every unit reads the whole input (after flatten/linear/global)
    unknown: str | None = None  # why the algebra cannot say (e.g. after an upsampling layer)
    window: Window | None = None  # this node's own geometry, when it slides a window
    approximate: bool = False  # an adaptive pooling's windows differ: largest window used


def spatial_dims(shape: tuple[int, ...]) -> int:
    """Spatial axes of a ``(C, *spatial)`` shape; a token sequence ``(L,)`` has one."""
    return max(1, len(shape) - 1)


def receptive_fields(graph: Graph) -> list[NodeField]:
    """The receptive field of every node, in topological order."""
    dims = spatial_dims(graph.input_shape)
    known: dict[str, NodeField] = {
        INPUT: NodeField(INPUT, "input", graph.input_shape, Fields.of([Field.identity(dims)]))
    }
    result = []
    for node in graph.nodes:
        here = _through(node, [known[i] for i in node.inputs], graph)
        known[node.name] = here
        result.append(here)
    return result


def _through(node: Node, inputs: list[NodeField], graph: Graph) -> NodeField:
    base = NodeField(node.name, node.kind, node.shape)
    unknown = next((i.unknown for i in inputs if i.unknown), None)
    if unknown:
        return _replace(base, unknown=unknown)
    if node.kind in UPSAMPLING:
        return _replace(base, unknown=f"after {node.name} ({node.kind}), which upsamples")
    if any(i.sees_all for i in inputs):
        return _replace(base, sees_all=True)
    inherited = any(i.approximate for i in inputs)
    merged = Fields.merge(i.fields for i in inputs if i.fields is not None)
    rule = LAYERS[node.kind].rf(node.args, graph.input_shapes(node))
    if rule is SEES_ALL:
        return _replace(base, sees_all=True)
    if isinstance(rule, Window):
        if len(rule.kernel) != merged.dims:
            return _replace(base, unknown=f"{node.name} changes the number of spatial axes")
        fields = merged.through(rule.kernel, rule.stride, rule.pad_before, rule.dilation)
        approximate = inherited or not rule.exact
        return _replace(base, fields=fields, window=rule, approximate=approximate)
    return _replace(base, fields=merged, approximate=inherited)


def _replace(base: NodeField, **changes: object) -> NodeField:
    from dataclasses import replace

    return replace(base, **changes)
