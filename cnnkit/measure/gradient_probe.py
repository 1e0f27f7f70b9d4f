"""Measure receptive fields in PyTorch: the brute-force check behind ``cnnkit rf --verify``
and the effective receptive field behind ``--erf`` (Luo et al., NeurIPS 2016).

``--verify`` must see every input position the algebra says a unit reads, so nothing may
cancel or vanish: weights are set positive (uniform in [0.5, 1.5] / fan-in, which keeps
activations O(1) through deep nets), inputs are positive, the model runs in eval mode in
float64, and max pooling (whose gradient reaches one position per window) is swapped for
average pooling of the same geometry. Elementwise activations cannot widen or narrow a field,
but the saturating ones (ReLU6, hard sigmoid, sigmoid in float64 ...) have an exactly zero
gradient once positive activations grow past their knee, which measured nothing at all on
MobileNet: the probe runs them as identities, and the bounded gates (sigmoid, hard sigmoid,
multiplied into a squeeze-excitation product) as a soft gate 0.5 + 0.5 * x / (1 + |x|),
bounded like a sigmoid so products do not overflow, with a gradient that never vanishes.
``--erf`` keeps the network as initialised and averages
the gradient magnitude over a few random inputs, as Luo et al. do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnkit.model.modules import ScaledTanh
from cnnkit.recipe import Recipe

MAXPOOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
AVGPOOLS = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
ADAPTIVE = {
    nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d,
}


# Elementwise activations: the same support as the identity (or the soft gate), not saturating.
PASS_THROUGH = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.SiLU, nn.GELU, nn.Mish, nn.ELU, nn.CELU,
    nn.SELU, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Tanh, nn.Softplus, nn.Softsign, ScaledTanh,
)  # fmt: skip
GATES = (nn.Sigmoid, nn.Hardsigmoid)


class SoftGate(nn.Module):
    """A sigmoid-like gate in (0, 1) whose gradient stays non-zero in float64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 + 0.5 * x / (1 + x.abs())


@dataclass(frozen=True)
class Extent:
    """Where the gradient of one output unit is non-zero, per spatial axis (inclusive)."""

    unit: tuple[int, ...]  # the probed unit's spatial index in the node's output
    first: tuple[int, ...]
    last: tuple[int, ...]


def _tokens_in(recipe: Recipe) -> bool:
    graph = recipe.graph
    return graph is not None and any(
        n.kind == "embedding" and "input" in n.inputs for n in graph.nodes
    )


def _swap_max_pools(model: nn.Module) -> list[str]:
    """Average pools of the same geometry instead of max pools; returns what could not swap."""
    kept = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MAXPOOLS):
                dims = MAXPOOLS.index(type(child)) + 1
                dilation = child.dilation
                if any(d != 1 for d in (dilation if isinstance(dilation, tuple) else (dilation,))):
                    kept.append(name)
                    continue
                setattr(
                    parent,
                    name,
                    AVGPOOLS[dims](
                        child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode
                    ),
                )
            elif type(child) in ADAPTIVE:
                setattr(parent, name, ADAPTIVE[type(child)](child.output_size))
    return kept


def _linear_activations(model: nn.Module) -> None:
    """Identities and soft gates for the activations that saturate (see the module doc)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PASS_THROUGH):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, GATES):
                setattr(parent, name, SoftGate())


def _positive_weights(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if name == "weight" and param.dim() >= 2:
                    fan_in = param[0].numel()
                    param.uniform_(0.5, 1.5).div_(fan_in)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.uniform_(0.0, 0.1)


def _forward(
    model: nn.Module, recipe: Recipe, node: str, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model once; return the probed node's output and the tensor whose gradient
    is measured (the input, or the embedding's output for token inputs)."""
    captured: dict[str, torch.Tensor] = {}
    target = model.get_submodule(node)
    handles = [target.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))]
    if _tokens_in(recipe):
        x = torch.randint(0, _vocab(recipe), (1, *recipe.input_shape))
        first = next(n for n in recipe.graph.nodes if n.kind == "embedding")  # type: ignore[union-attr]

        def keep(m: nn.Module, i: object, o: torch.Tensor) -> torch.Tensor:
            o = o.detach().requires_grad_(True)
            captured["probe"] = o
            return o

        handles.append(model.get_submodule(first.name).register_forward_hook(keep))
    else:
        x = (torch.rand(1, *recipe.input_shape, dtype=dtype) + 0.5).requires_grad_(True)
        captured["probe"] = x
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured["out"], captured["probe"]


def _gradient(out: torch.Tensor, probe: torch.Tensor, unit: tuple[int, ...]) -> torch.Tensor:
    """|d out[unit] / d probe|, summed over channels (the graph is kept for more units)."""
    (grad,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), probe, retain_graph=True)
    return grad[0].abs().sum(dim=0)


def _centre(out: torch.Tensor) -> tuple[int, ...]:
    return tuple(n // 2 for n in out.shape[2:])


def _vocab(recipe: Recipe) -> int:
    graph = recipe.graph
    assert graph is not None
    return min(n.args["vocab"] for n in graph.nodes if n.kind == "embedding")


def _extent(grad: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """Per axis, the first and last position of non-zero gradient ((-1, -1): none)."""
    spans = []
    for axis in range(grad.dim()):
        other = tuple(a for a in range(grad.dim()) if a != axis)
        hit = (grad.sum(dim=other) if other else grad) > 0
        where = hit.nonzero().flatten()
        spans.append((int(where.min()), int(where.max())) if len(where) else (-1, -1))
    return tuple(spans)


def measure_extents(
    recipe: Recipe, node: str, units: list[tuple[int, ...]], seed: int = 0
) -> tuple[list[Extent], tuple[str, ...]]:
    """The input positions each of ``units`` of ``node`` really depends on, found by
    backpropagation through one forward pass; and notes on what could weaken the check."""
    from cnnkit.model.build import build

    torch.manual_seed(seed)
    model = build(recipe, seed=seed).double().eval()
    kept = _swap_max_pools(model)
    _linear_activations(model)
    _positive_weights(model)
    out, probe = _forward(model, recipe, node, torch.float64)
    extents = []
    for unit in units:
        spans = _extent(_gradient(out, probe, unit))
        extents.append(Extent(unit, tuple(a for a, _ in spans), tuple(b for _, b in spans)))
    notes = ()
    if kept:
        notes = (
            f"dilated max pooling kept ({', '.join(kept)}): its gradient reaches one position "
            "per window, so the measured extent can be smaller",
        )
    return extents, notes


def effective_field(
    recipe: Recipe, node: str, samples: int = 8, seed: int = 0
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Mean |d unit / d input| over random inputs, summed over channels (Luo et al. 2016)."""
    from cnnkit.model.build import build

    torch.manual_seed(seed)
    model = build(recipe, seed=seed).eval()
    total = None
    unit: tuple[int, ...] = ()
    for _ in range(samples):
        out, probe = _forward(model, recipe, node, torch.float32)
        unit = _centre(out)
        grad = _gradient(out, probe, unit)
        total = grad if total is None else total + grad
    assert total is not None
    return total / samples, unit


def save_heatmap(values: torch.Tensor, path: str, box: tuple[tuple[int, int], ...] | None) -> None:
    """Write a 2-D map as a PNG (``cnnkit.plots.erf_figure``): axes in input pixels, a colour
    bar, and the theoretical field (``box`` = (first, last) per axis) and the box holding 95%
    of the gradient mass outlined and named in the legend."""
    from cnnkit.plots import save_erf

    v = values.detach().double().cpu()
    save_erf(v.numpy(), path, box, mass_extent(v))


def mass_extent(values: torch.Tensor, fraction: float = 0.95) -> tuple[tuple[int, int], ...]:
    """Per axis, the central interval holding ``fraction`` of the map's mass."""
    spans = []
    v = values.double()
    tail = (1 - fraction) / 2
    for axis in range(v.dim()):
        other = tuple(a for a in range(v.dim()) if a != axis)
        marginal = v.sum(dim=other) if other else v
        cdf = marginal.cumsum(0) / marginal.sum()
        lo = int((cdf < tail).sum())
        hi = int((cdf < 1 - tail).sum())
        spans.append((lo, min(hi, len(cdf) - 1)))
    return tuple(spans)
