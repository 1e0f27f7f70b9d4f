"""The torch side of ``cnnkit params``: counts of torchvision/timm models, and ``--verify``,
which checks the pure analysis against the built module, fvcore's FlopCountAnalysis and
torch's FlopCounterMode (``cnnkit.measure.flop_counter``, which says what that one counts).

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
from cnnkit.measure.flop_counter import COUNTS, as_macs, flop_counts
from cnnkit.model.build import build, build_external, example_input
from cnnkit.recipe import Recipe

# fvcore operator names whose count is a multiply-accumulate count (fvcore's "flop").
MAC_OPERATORS = frozenset({"conv", "linear", "addmm", "mm", "matmul", "bmm", "einsum"})

# Why an oracle's MAC count differs from the analysis for these kinds (by design): each kind's
# ``verify_note`` (fvcore) and ``flop_counter_note`` (FlopCounterMode) in its registry row.
EXPLAINED: dict[str, str] = {
    name: kind.verify_note for name, kind in LAYERS.items() if kind.verify_note is not None
}
FLOP_COUNTER_EXPLAINED: dict[str, str] = {
    name: kind.flop_counter_note
    for name, kind in LAYERS.items()
    if kind.flop_counter_note is not None
}
NOTES = {"fvcore": EXPLAINED, "flop_counter": FLOP_COUNTER_EXPLAINED}

# What each reference counts (in the --json document, so a script can tell them apart).
ORACLES = {
    "module": "parameters and buffers: numel() of each node's module in the built network",
    "fvcore": (
        "fvcore FlopCountAnalysis (a jit trace): its conv, linear, addmm, mm, matmul, bmm and "
        "einsum counts, one multiply-add = one flop, bias ignored, transposed conv per input "
        "pixel; its other handles (batch_norm, adaptive pooling, upsample) are listed in "
        "fvcore_other_ops, not MACs; ops without a handle count 0 (fvcore_unsupported_ops)"
    ),
    "flop_counter": f"torch.utils.flop_counter.FlopCounterMode: {COUNTS}",
}
OUTSIDE = "(outside the nodes)"  # the name of a difference in the totals no node accounts for


class VerificationFailed(CnnkitError):
    """``--verify`` found a difference nobody explained: exit code 1, like a failed gate."""

    exit_code = 1


@dataclass(frozen=True)
class Difference:
    """One node where the analysis and a reference (``oracle``: module, fvcore or
    flop_counter) disagree."""

    name: str
    kind: str
    quantity: str  # "params", "buffers" or "macs"
    analysis: int
    reference: int | float
    reason: str
    explained: bool
    oracle: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Verification:
    """The outcome of ``--verify``: totals on every side, per-node differences, what fvcore
    counted outside conv/linear or could not count at all, and FlopCounterMode's FLOPs by op.
    ``macs[1]`` is None when fvcore is not installed (FlopCounterMode still checks)."""

    versions: dict[str, str | None]
    params: tuple[int, int]
    buffers: tuple[int, int]
    macs: tuple[int, int | None]
    flop_counter_macs: int | float
    nodes: int
    mac_nodes: int
    differences: list[Difference] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)
    other_fvcore: dict[str, int] = field(default_factory=dict)
    flop_counter_ops: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(d.explained for d in self.differences)

    def as_dict(self) -> dict[str, object]:
        return {
            "versions": self.versions,
            "oracles": ORACLES,
            "params": {"analysis": self.params[0], "module": self.params[1]},
            "buffers": {"analysis": self.buffers[0], "module": self.buffers[1]},
            "macs": {
                "analysis": self.macs[0],
                "fvcore": self.macs[1],
                "flop_counter": self.flop_counter_macs,
            },
            "nodes": self.nodes,
            "mac_nodes": self.mac_nodes,
            "differences": [d.as_dict() for d in self.differences],
            "fvcore_unsupported_ops": self.unsupported,
            "fvcore_other_ops": self.other_fvcore,
            "flop_counter_flops": self.flop_counter_ops,
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


def fvcore_version() -> str | None:
    """fvcore's version, None when it cannot be imported (then FlopCounterMode checks alone)."""
    try:
        import fvcore.nn  # noqa: F401
    except ImportError:
        return None
    return importlib.metadata.version("fvcore")


class _Fvcore:
    """fvcore's counts of one forward, by module path ('' is the whole forward)."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        self.analysis = flop_analysis(model, x)
        self.per_module = self.analysis.by_module_and_operator()

    def macs(self, name: str) -> int:
        return mac_count(self.per_module.get(name, Counter()))

    def skipped(self, name: str) -> Counter:
        return self.analysis.unsupported_ops(name)


def verify(recipe: Recipe, rows: list[LayerCost]) -> Verification:
    """Compare params and buffers per node with the built module, and conv/linear MACs per
    node and in total with fvcore (when installed) and with FlopCounterMode at batch 1
    (``rows`` must come from ``graph_costs`` at batch 1)."""
    assert recipe.graph is not None
    model = counting_module(recipe)
    x = example_input(recipe, 1)
    version = fvcore_version()
    fv = _Fvcore(model, x) if version else None
    counted = flop_counts(model, x)
    differences: list[Difference] = []
    mac_nodes = 0
    for row in rows:
        differences += _module_differences(row, model.get_submodule(row.name))
        theirs = {"fvcore": fv.macs(row.name)} if fv is not None else {}
        theirs["flop_counter"] = as_macs(counted.flops(row.name))
        mac_nodes += bool(row.macs or any(theirs.values()))
        for oracle, macs in theirs.items():
            if (row.macs or 0) != macs:
                skipped = fv.skipped(row.name) if fv is not None and oracle == "fvcore" else {}
                differences.append(_difference(row, "macs", macs, oracle, skipped))
    # FLOPs of the whole forward against the sum over the nodes' modules
    totals = {"fvcore": (2 * fv.macs(""), 2 * sum(fv.macs(r.name) for r in rows))} if fv else {}
    totals["flop_counter"] = (counted.total_flops, sum(counted.flops(r.name) for r in rows))
    differences += _outside_nodes(totals)
    root = fv.per_module.get("", Counter()) if fv is not None else Counter()
    return Verification(
        versions={"torch": torch.__version__, "fvcore": version},
        params=(sum(r.params for r in rows), sum(p.numel() for p in model.parameters())),
        buffers=(sum(r.buffers for r in rows), sum(b.numel() for b in model.buffers())),
        macs=(sum(r.macs or 0 for r in rows), fv.macs("") if fv is not None else None),
        flop_counter_macs=as_macs(counted.total_flops),
        nodes=len(rows),
        mac_nodes=mac_nodes,
        differences=differences,
        unsupported=dict(fv.skipped("")) if fv is not None else {},
        other_fvcore={k: int(v) for k, v in root.items() if k not in MAC_OPERATORS},
        flop_counter_ops=dict(counted.total),
    )


def _module_differences(row: LayerCost, module: nn.Module) -> list[Difference]:
    """Parameters and buffers of the node against its module's ``numel()``."""
    measured = {
        "params": sum(p.numel() for p in module.parameters()),
        "buffers": sum(b.numel() for b in module.buffers()),
    }
    return [
        _difference(row, quantity, theirs, "module", Counter())
        for quantity, theirs in measured.items()
        if getattr(row, quantity) != theirs
    ]


def _difference(
    row: LayerCost, quantity: str, theirs: int | float, oracle: str, skipped: Counter
) -> Difference:
    ours = {"params": row.params, "buffers": row.buffers, "macs": row.macs or 0}[quantity]
    known = NOTES[oracle].get(row.kind) if oracle in NOTES else None
    reason = known or "not explained: the analysis and the built module disagree (a bug)"
    if skipped:  # say which of this node's ops fvcore logged as unsupported and counted as 0
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(skipped.items()))
        reason = f"{reason}; fvcore unsupported here: {ops}"
    return Difference(row.name, row.kind, quantity, ours, theirs, reason, known is not None, oracle)


def _outside_nodes(totals: dict[str, tuple[int, int]]) -> list[Difference]:
    """A total that the nodes do not add up to (FLOPs, whole forward vs summed over the nodes'
    modules): MACs an oracle counted outside every node, which no kind's note can explain."""
    return [
        Difference(
            OUTSIDE,
            "-",
            "macs",
            0,
            as_macs(whole - nodes),
            f"not explained: {oracle} counts {as_macs(whole - nodes):,} MACs in no node's module",
            False,
            oracle,
        )  # fmt: skip
        for oracle, (whole, nodes) in totals.items()
        if whole != nodes
    ]


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
