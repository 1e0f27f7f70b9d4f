"""Receptive fields of every node of a recipe graph, through any DAG.

Each node's field comes from its inputs' fields and its kind's receptive-field rule
(``LayerKind.rf``): a window (conv, pooling, a transposed conv's fractional stride, adaptive
pooling's uneven windows) moves the field forward one span per axis (``arith.receptive``), a
pointwise kind passes it through, a merge (add, concat) takes the union of its inputs' fields,
and a kind that reads its whole input (flatten, linear, global pooling) makes every later field
"global". Each node costs a constant amount of work per input, so a graph costs O(edges).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cnnkit.arith.receptive import Field, FieldTooIrregular, Span
from cnnkit.layers import LAYERS, SEES_ALL, Resampled, Window
from cnnkit.recipe.graph import INPUT, Graph, Node


@dataclass(frozen=True)
class NodeField:
    """What one node's units see. Exactly one of: ``fields`` set, ``sees_all``, ``unknown``."""

    name: str
    kind: str
    output: tuple[int, ...]
    fields: Field | None = None
    sees_all: bool = False  # every unit reads the whole input (after flatten/linear/global)
    unknown: str | None = None  # why the algebra cannot say
    window: Window | None = None  # this node's own geometry, when it slides a window
    resampled: bool = False  # an upsample: its units read a pattern no window describes

    @property
    def units(self) -> tuple[int, ...]:
        """Units along each spatial axis of the node's output."""
        assert self.fields is not None
        return self.output[-self.fields.dims :]


def spatial_dims(shape: tuple[int, ...]) -> int:
    """Spatial axes of a ``(C, *spatial)`` shape; a token sequence ``(L,)`` has one."""
    return max(1, len(shape) - 1)


def receptive_fields(graph: Graph) -> list[NodeField]:
    """The receptive field of every node, in topological order."""
    dims = spatial_dims(graph.input_shape)
    known: dict[str, NodeField] = {
        INPUT: NodeField(INPUT, "input", graph.input_shape, Field.identity(dims))
    }
    result = []
    for node in graph.nodes:
        here = _through(node, [known[i] for i in node.inputs], graph)
        known[node.name] = here
        result.append(here)
    return result


def _through(node: Node, inputs: list[NodeField], graph: Graph) -> NodeField:
    try:
        return _step(node, inputs, graph)
    except FieldTooIrregular as err:
        return NodeField(node.name, node.kind, node.shape, unknown=f"at {node.name}: {err}")


def _step(node: Node, inputs: list[NodeField], graph: Graph) -> NodeField:
    base = NodeField(node.name, node.kind, node.shape)
    rule = LAYERS[node.kind].rf(node.args, graph.input_shapes(node))
    if isinstance(rule, Resampled):
        return _resampled(base, rule, inputs[0])
    unknown = next((i.unknown for i in inputs if i.unknown), None)
    if unknown:
        return replace(base, unknown=unknown)
    if any(i.sees_all for i in inputs):
        return replace(base, sees_all=True)
    if len(inputs) > 1 and any(_broadcast(i.output, node.shape) for i in inputs):
        return replace(
            base,
            unknown=f"at {node.name}: {node.kind} stretches a smaller input over "
            "the spatial axes (only a gate that sees the whole input has a known field)",
        )
    merged = Field.merge(i.fields for i in inputs if i.fields is not None)
    if rule is SEES_ALL:
        return replace(base, sees_all=True)
    if not isinstance(rule, Window):
        return replace(base, fields=merged)
    if len(rule.kernel) != merged.dims:
        return replace(base, unknown=f"{node.name} changes the number of spatial axes")
    spans = layer_spans(rule, graph.input_shapes(node)[0], node.shape)
    if spans is None:
        return replace(
            base,
            unknown=f"at {node.name} ({node.kind}): some output units read no input, or read "
            "it out of order (kernel shorter than the stride, or a dilation sharing a factor "
            "with it), so its units have no contiguous field",
            window=rule,
        )
    return replace(base, fields=merged.through(spans), window=rule)


def _resampled(base: NodeField, rule: Resampled, source: NodeField) -> NodeField:
    """An upsample: input 0's field through the kind's own spans (a second input, the size
    to match, contributes no positions)."""
    base = replace(base, resampled=True)
    if source.unknown or source.sees_all:
        return replace(base, unknown=source.unknown, sees_all=source.sees_all)
    assert source.fields is not None
    if rule.spans is None:
        return replace(base, unknown=f"at {base.name} ({base.kind}): {rule.reason}")
    return replace(base, fields=source.fields.through(rule.spans))


def _broadcast(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """True when an input of ``shape`` is stretched along a spatial axis to ``out`` (mul's
    size-1 gate): its one unit's field is every output unit's, which the span algebra
    cannot express. Gates from global pooling see everything and never reach here."""
    dims = spatial_dims(out)
    return shape[-dims:] != out[-dims:]


def layer_spans(
    rule: Window, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tuple[Span, ...] | None:
    """Per axis, which input positions each output unit of a window layer reads; None when a
    transposed layer leaves units that read nothing (see ``Span.transposed``)."""
    dims = len(rule.kernel)
    if rule.adaptive:
        return tuple(map(Span.adaptive, in_shape[-dims:], out_shape[-dims:]))
    geometry = (rule.kernel, rule.stride, rule.pad_before, rule.dilation)
    if rule.transposed:
        spans = tuple(map(Span.transposed, *geometry))
        return None if None in spans else spans  # type: ignore[return-value]
    return tuple(map(Span.window, *geometry))
