"""The torch side of ``cnnkit params``: counts of torchvision/timm models, and ``--verify``,
which checks the pure analysis against the built module and fvcore's FlopCountAnalysis.

fvcore's conventions, read from ``fvcore/nn/jit_handles.py`` (0.1.5): "we count one fused
multiply-add as one flop"; convolution = batch * prod(weight shape) * prod(output spatial),
with the weight shape (out, in/groups, *k), so grouped and depthwise convolutions come out
as cnnkit's MACs; a transposed convolution is counted over the *input* spatial size, as in
cnnkit; ``aten::linear``/``aten::addmm`` count in * out per row, bias ignored. So its
``conv`` + ``linear`` + ``addmm`` counts are exactly cnnkit's MACs, and every difference
below is a layer where the two count different things, each with its reason.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnkit.analysis.costs import LayerCost
from cnnkit.analysis.memory import DTYPE_BYTES
from cnnkit.errors import CnnkitError
from cnnkit.layers import LAYERS
from cnnkit.model.build import build, build_external, example_input
from cnnkit.recipe import Recipe

# fvcore operator names whose count is a multiply-accumulate count (fvcore's "flop").
MAC_OPERATORS = frozenset({"conv", "linear", "addmm", "mm", "matmul", "bmm", "einsum"})

# Why fvcore's conv/linear count differs from the analysis for these kinds (by design): each
# kind's ``verify_note`` in its registry row, gathered here.
EXPLAINED: dict[str, str] = {
    name: kind.verify_note for name, kind in LAYERS.items() if kind.verify_note is not None
}


class VerificationFailed(CnnkitError):
    """``--verify`` found a difference nobody explained: exit code 1, like a failed gate."""

    exit_code = 1


@dataclass(frozen=True)
class Difference:
    """One node where the analysis and the reference disagree."""

    name: str
    kind: str
    quantity: str  # "params", "buffers" or "macs"
    analysis: int
    reference: int
    reason: str
    explained: bool

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Verification:
    """The outcome of ``--verify``: totals on both sides, per-node differences, and what
    fvcore counted outside conv/linear or could not count at all."""

    versions: dict[str, str]
    params: tuple[int, int]
    buffers: tuple[int, int]
    macs: tuple[int, int]
    nodes: int
    mac_nodes: int
    differences: list[Difference] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)
    other_fvcore: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(d.explained for d in self.differences)

    def as_dict(self) -> dict[str, object]:
        return {
            "versions": self.versions,
            "params": {"analysis": self.params[0], "module": self.params[1]},
            "buffers": {"analysis": self.buffers[0], "module": self.buffers[1]},
            "macs": {"analysis": self.macs[0], "fvcore": self.macs[1]},
            "nodes": self.nodes,
            "mac_nodes": self.mac_nodes,
            "differences": [d.as_dict() for d in self.differences],
            "fvcore_unsupported_ops": self.unsupported,
            "fvcore_other_ops": self.other_fvcore,
            "ok": self.ok,
        }


def counting_module(recipe: Recipe) -> nn.Module:
    """The recipe's module in eval mode, built on the meta device and then given
    zeroed CPU storage: same parameters and shapes, without the seconds VGG-16's 138M-weight
    initialisation takes. Zeros, not the uninitialised memory, because stray denormals
    make CPU convolutions ten times slower. Only counts are read, never the outputs."""
    with torch.device("meta"):
        model = build(recipe)
    model = model.to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.zero_()
    return model


def flop_analysis(model: nn.Module, x: torch.Tensor):
    """fvcore's FlopCountAnalysis, run now, with its logging off (we report unsupported
    ops ourselves rather than hide them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore uses torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about data-dependent branches
        analysis.by_module_and_operator()
    return analysis


def mac_count(counter: Counter) -> int:
    return int(sum(v for k, v in counter.items() if k in MAC_OPERATORS))


def verify(recipe: Recipe, rows: list[LayerCost]) -> Verification:
    """Compare params and buffers per node with the built module, and conv/linear MACs per
    node with fvcore at batch 1 (``rows`` must come from ``graph_costs`` at batch 1)."""
    assert recipe.graph is not None
    model = counting_module(recipe)
    analysis = flop_analysis(model, example_input(recipe, 1))
    per_module = analysis.by_module_and_operator()
    differences: list[Difference] = []
    mac_nodes = 0
    for row in rows:
        module = model.get_submodule(row.name)
        measured = {
            "params": sum(p.numel() for p in module.parameters()),
            "buffers": sum(b.numel() for b in module.buffers()),
            "macs": mac_count(per_module.get(row.name, Counter())),
        }
        mac_nodes += bool(row.macs or measured["macs"])
        ours = {"params": row.params, "buffers": row.buffers, "macs": row.macs or 0}
        for quantity, theirs in measured.items():
            if ours[quantity] != theirs:
                skipped = analysis.unsupported_ops(row.name) if quantity == "macs" else {}
                differences.append(_difference(row, quantity, ours[quantity], theirs, skipped))
    root = per_module.get("", Counter())
    return Verification(
        versions={"torch": torch.__version__, "fvcore": importlib.metadata.version("fvcore")},
        params=(sum(r.params for r in rows), sum(p.numel() for p in model.parameters())),
        buffers=(sum(r.buffers for r in rows), sum(b.numel() for b in model.buffers())),
        macs=(sum(r.macs or 0 for r in rows), mac_count(root)),
        nodes=len(rows),
        mac_nodes=mac_nodes,
        differences=differences,
        unsupported=dict(analysis.unsupported_ops()),
        other_fvcore={k: int(v) for k, v in root.items() if k not in MAC_OPERATORS},
    )


def _difference(
    row: LayerCost, quantity: str, ours: int, theirs: int, skipped: Counter
) -> Difference:
    known = EXPLAINED.get(row.kind) if quantity == "macs" else None
    reason = known or "not explained: the analysis and the built module disagree (a bug)"
    if skipped:  # say which of this node's ops fvcore logged as unsupported and counted as 0
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(skipped.items()))
        reason = f"{reason}; fvcore unsupported here: {ops}"
    return Difference(row.name, row.kind, quantity, ours, theirs, reason, known is not None)


def external_costs(recipe: Recipe, batch: int, dtype: str) -> list[LayerCost]:
    """Rows of a torchvision/timm model: one per leaf module, plus any module that holds
    parameters itself or runs conv/linear/matmul ops of its own. Parameters are counted
    once each (a module used twice, or a tied weight, counts once); MACs are fvcore's
    conv/linear/matmul counts, so a module called twice counts twice; activations are
    the outputs of leaf modules (functional ops between modules are not seen)."""
    assert recipe.external is not None
    model = build_external(recipe.external).eval()
    x = example_input(recipe, batch)
    outputs = _leaf_outputs(model, x)
    per_module = flop_analysis(model, x).by_module_and_operator()
    seen: set[int] = set()
    size = DTYPE_BYTES[dtype]
    rows = []
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        buffers = sum(b.numel() for b in module.buffers(recurse=False))
        children = [f"{name}.{c}" if name else c for c, _ in module.named_children()]
        macs = mac_count(per_module.get(name, Counter())) - sum(
            mac_count(per_module.get(c, Counter())) for c in children
        )
        leaf = not children
        if not (leaf or own or buffers or macs):
            continue
        shape, elements = outputs.get(name, ((), 0)) if leaf else ((), 0)
        rows.append(
            LayerCost(
                name or "(root)",
                type(module).__name__,
                shape,
                sum(p.numel() for p in own),
                sum(p.numel() for p in own if p.requires_grad),
                buffers,
                macs,
                None,
                elements,
                elements * size,
            )
        )
    return rows


def _leaf_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[tuple[int, ...], int]]:
    """Output shape (without the batch) and elements (summed over calls) of leaf modules."""
    found: dict[str, tuple[tuple[int, ...], int]] = {}

    def hook(name: str):
        def record(module: nn.Module, args: object, out: object) -> None:
            tensors = [t for t in (out if isinstance(out, tuple | list) else (out,))]
            tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
            shape, count = found.get(name, ((), 0))
            if tensors:
                shape = shape or tuple(tensors[0].shape[1:])
            found[name] = (shape, count + sum(t.numel() for t in tensors))

        return record

    handles = [
        m.register_forward_hook(hook(n))
        for n, m in model.named_modules()
        if n and not any(True for _ in m.children())
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found
