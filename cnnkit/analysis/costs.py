"""Per-layer costs of a recipe graph at a batch size and dtype: the data behind
``cnnkit params`` (pure Python; the CLI renders it, ``cnnkit.measure.verify`` fills the same
rows for torchvision/timm models).

Conventions (named in every output): ``macs`` are conv + linear multiply-accumulates with
the bias excluded, as torchvision's published "GFLOPS" and fvcore's conv/linear counts (the
LeNet-1998 kinds partial_conv, subsample and rbf add their own multiply-accumulates);
``flops`` = 2 x ``macs``; ``ops`` counts every operation by each kind's rule (``ops_rules``).
A transposed convolution is counted per input pixel. MACs, ops and activations are for one
batch of ``batch`` samples; parameters do not depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cnnkit.analysis.counts import node_counts
from cnnkit.analysis.memory import DTYPE_BYTES
from cnnkit.layers import LAYERS, LayerKind
from cnnkit.layers._kind import prod
from cnnkit.recipe.graph import Graph

CONVENTION = {
    "macs": (
        "conv + linear multiply-accumulates, bias excluded: the convention of torchvision's "
        "published GFLOPS and fvcore's conv/linear counts (fvcore calls one MAC one flop); "
        "transposed convolutions per input pixel; LeNet-1998 partial_conv/subsample/rbf add "
        "their own multiply-accumulates"
    ),
    "flops": "2 x macs",
    "ops": "every operation, by the rule of each layer kind (docs/reference/ops.md)",
    "per": "macs, flops, ops and activations are for one batch of `batch` samples",
    "shared_parameters": (
        "counted once; recipes have no weight sharing, torchvision/timm models are counted "
        "over their unique parameters"
    ),
}


@dataclass(frozen=True)
class LayerCost:
    """One row: a graph node (or a group of them, or a torch leaf module).

    ``params`` counts every parameter, ``trainable`` those that get gradients; ``buffers``
    is other stored state. ``macs``/``ops`` are None where no rule is known (ops of
    torchvision/timm models). ``activations`` are output elements for the whole batch.
    """

    name: str
    kind: str
    output: tuple[int, ...]
    params: int
    trainable: int
    buffers: int
    macs: int | None
    ops: int | None
    activations: int
    activation_bytes: int

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "output": list(self.output),
            "params": self.params,
            "trainable": self.trainable,
            "buffers": self.buffers,
            "macs": self.macs,
            "flops": self.flops,
            "ops": self.ops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
        }


def graph_costs(graph: Graph, batch: int = 1, dtype: str = "fp32") -> list[LayerCost]:
    """Rows of every node in topological order, from the registry's count rules."""
    size = DTYPE_BYTES[dtype]
    counts = node_counts(graph)
    rows = []
    for node in graph.nodes:
        c = counts[node.name]
        rows.append(
            LayerCost(
                node.name,
                node.kind,
                node.shape,
                c.params,
                c.params if node.trainable else 0,
                c.buffers,
                batch * c.macs,
                batch * c.ops,
                batch * c.activations,
                batch * c.activations * size,
            )
        )
    return rows


def _sum(values: Iterable[int | None]) -> int | None:
    items = list(values)
    return None if any(v is None for v in items) else sum(v for v in items if v is not None)


def total(rows: list[LayerCost], name: str = "total", kind: str = "") -> LayerCost:
    """The sum of ``rows``; the output shape is the last row's."""
    return LayerCost(
        name,
        kind,
        rows[-1].output if rows else (),
        sum(r.params for r in rows),
        sum(r.trainable for r in rows),
        sum(r.buffers for r in rows),
        _sum(r.macs for r in rows),
        _sum(r.ops for r in rows),
        sum(r.activations for r in rows),
        sum(r.activation_bytes for r in rows),
    )


def aggregate(rows: list[LayerCost], depth: int) -> list[LayerCost]:
    """Rows grouped by the first ``depth`` parts of their dotted names (``layer3.1`` for
    depth 2), in order of first appearance; a group of one keeps its row as it is."""
    groups: dict[str, list[LayerCost]] = {}
    for row in rows:
        groups.setdefault(".".join(row.name.split(".")[:depth]), []).append(row)
    out = []
    for prefix, members in groups.items():
        if len(members) == 1 and members[0].name == prefix:
            out.append(members[0])
        else:
            out.append(total(members, f"{prefix}.*", f"{len(members)} layers"))
    return out


def input_elements(shape: tuple[int, ...], batch: int) -> int:
    return batch * prod(shape)


def ops_rules() -> dict[str, str]:
    """Each kind's rule for the ops column, as its registry row states it (``LayerKind.ops``)."""
    return {name: ops_rule(kind) for name, kind in LAYERS.items()}


def ops_rule(kind: LayerKind) -> str:
    """The ops rule of one kind: its row's ``ops`` text."""
    return kind.ops
