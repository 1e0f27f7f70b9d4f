"""Recipe -> ``nn.Module``: the graph module with seeded initialisation, or an external
library's model (``model: {torchvision: resnet50}``)."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from cnnkit.errors import MissingDependencyError, RecipeError
from cnnkit.model.init import initialise
from cnnkit.model.network import GraphModule
from cnnkit.recipe import INPUT, Recipe
from cnnkit.recipe.model import External


def build(recipe: Recipe, seed: int | None = None) -> nn.Module:
    """Build the recipe's model; the same seed (default: ``model.seed``) gives the same
    weights. The global torch RNG is left as it was."""
    seed = recipe.seed if seed is None else seed
    check_buildable(recipe)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if recipe.external is not None:
            return build_external(recipe.external)
        assert recipe.graph is not None
        model = GraphModule(recipe.graph)
        for node in recipe.graph.nodes:
            scheme = node.init or recipe.init
            module = model.get_submodule(node.name)
            initialise(module, scheme)
            if not node.trainable:
                module.requires_grad_(False)
    return model


def check_buildable(recipe: Recipe) -> None:
    """Refuse, before allocating, a model no machine holds (``check_sizes``) or one whose fp32
    weights, plus one sample through its largest layer, exceed this machine's memory."""
    from cnnkit.analysis.bounds import available_memory, check_sizes, largest_layer
    from cnnkit.analysis.counts import totals
    from cnnkit.analysis.memory import human_bytes
    from cnnkit.layers._kind import prod

    graph = recipe.graph
    if graph is None:
        return
    check_sizes(recipe)
    sums = totals(graph)
    widest = max(
        (sum(map(prod, graph.input_shapes(n))) + prod(n.shape) for n in graph.nodes), default=0
    )
    need = 4 * (sums.params + sums.buffers + widest)
    have = available_memory()
    if have is not None and need > have.bytes:
        raise RecipeError(
            f"building the model needs at least {human_bytes(need)} (fp32 weights and one "
            f"sample through its widest layer), more than the {human_bytes(have.bytes)} of "
            f"{have.what}; the largest layer is {largest_layer(recipe, 1, 4)}"
        )


_INSTALL = "pip install 'cnnkit[vision]'"


def build_external(spec: External) -> nn.Module:
    """torchvision.models.get_model / timm.create_model, or a message saying what to install."""
    try:
        library = importlib.import_module(
            spec.library if spec.library == "timm" else "torchvision.models"
        )
    except ImportError:
        raise MissingDependencyError(
            f"model {spec.library}:{spec.name} needs {spec.library}, which is not installed; "
            f"run: {_INSTALL}"
        ) from None
    try:
        if spec.library == "timm":
            return library.create_model(spec.name, **spec.kwargs)
        return library.get_model(spec.name, **spec.kwargs)
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        raise RecipeError(f"{spec.library} cannot build {spec.name!r}: {err}") from None


def example_input(recipe: Recipe, batch: int = 1) -> torch.Tensor:
    """A random input batch for the recipe: token ids below the smallest vocabulary when
    an embedding reads the input, else standard normal values."""
    shape = (batch, *recipe.input_shape)
    vocabs = [
        n.args["vocab"]
        for n in (recipe.graph.nodes if recipe.graph else ())
        if n.kind == "embedding" and INPUT in n.inputs
    ]
    if vocabs:
        return torch.randint(0, min(vocabs), shape)
    return torch.randn(shape)
