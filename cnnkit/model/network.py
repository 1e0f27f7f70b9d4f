"""``GraphModule``: an ordinary ``nn.Module`` that runs a recipe graph in topological order.

Each node's module is registered under its hierarchical name (``layer3.1.conv2`` becomes the
submodule ``layer3`` -> ``1`` -> ``conv2``), so ``state_dict`` keys read like the recipe.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.errors import RecipeError
from cnnkit.model.builders import BUILDERS
from cnnkit.model.norm_modules import OwnKey
from cnnkit.recipe.graph import INPUT, Graph


class GraphModule(nn.Module):
    """Runs ``graph``; intermediate outputs are dropped as soon as no later node needs them."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph
        last_use: dict[str, int] = {}
        for step, node in enumerate(graph.nodes):
            for name in node.inputs:
                last_use[name] = step
        last_use[graph.output] = len(graph.nodes)
        # Modules are looked up by path at every call (a few dict lookups), so replacing
        # a submodule (``model.fc = nn.Linear(...)``, a probe swapping pools) takes effect.
        self._steps: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = []
        for step, node in enumerate(graph.nodes):
            module = BUILDERS[node.kind](node.args, graph.input_shapes(node), node.shape)
            _attach(self, node.name, module, node.where)
            done = tuple(n for n in set(node.inputs) if last_use.get(n) == step)
            self._steps.append((node.name, tuple(node.name.split(".")), node.inputs, done))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {INPUT: x}
        for name, path, inputs, done in self._steps:
            module: nn.Module = self
            for part in path:
                module = module._modules[part]  # type: ignore[assignment]
            values[name] = module(*(values[i] for i in inputs))
            for finished in done:
                del values[finished]
        return values[self.graph.output]


def _attach(root: nn.Module, dotted: str, module: nn.Module, where: str) -> None:
    *groups, leaf = dotted.split(".")
    parent = root
    for group in groups:
        child = parent._modules.get(group)
        if child is None:
            child = nn.Module()
            _add(parent, group, child, dotted, where)
        parent = child
    _add(parent, leaf, module, dotted, where)
    own_key = getattr(module, "own_key", None)
    if own_key is not None:  # layer_scale: its parameter is keyed by the layer's name
        OwnKey.attach(parent, leaf, own_key)


def _add(parent: nn.Module, name: str, module: nn.Module, dotted: str, where: str) -> None:
    try:
        parent.add_module(name, module)
    except (KeyError, TypeError) as err:
        raise RecipeError(
            f"layer name {dotted!r} cannot be a torch module name: {err}", where=where
        ) from None
