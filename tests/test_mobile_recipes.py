"""The inverted-residual recipes (MobileNetV3, EfficientNet) under ``model.width``: their
residual and expansion choices come from each block's table row, so a narrower network keeps
the same structure (the same blocks add their input back, the same ones expand), builds, and
runs with the shapes the analysis infers. torchvision parity at width 1 is the oracle's."""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.analysis import totals
from cnnkit.recipe import load_recipe

RECIPES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")
SMALL = ["input=[3,64,64]"]  # the structure does not depend on the size; the test stays quick


def structure(recipe) -> tuple[set[str], set[str]]:
    """(blocks that add their input back, blocks that expand: a ``block.0`` 1x1 conv that is
    not depthwise)."""
    adds = {n.name.rsplit(".", 1)[0] for n in recipe.graph.nodes if n.kind == "add"}
    expands = {
        n.name.split(".block.")[0]
        for n in recipe.graph.nodes
        if n.kind == "conv" and n.name.endswith(".block.0.0") and n.args["groups"] == 1
    }
    return adds, expands


@pytest.mark.parametrize("name", RECIPES)
def test_a_narrower_network_keeps_its_structure_and_builds(name):
    base = load_recipe(name, SMALL)
    half = load_recipe(name, [*SMALL, "model.width=0.5"])
    adds, expands = structure(base)
    assert adds and expands
    assert structure(half) == (adds, expands)
    assert totals(half.graph).params < totals(base.graph).params
    model = cnnkit.build(half).eval()
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.get_submodule(n.name).register_forward_hook(
            lambda m, i, o, n=n.name: seen.__setitem__(n, tuple(o.shape[1:]))
        )
        for n in half.graph.nodes
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert seen == {n.name: n.shape for n in half.graph.nodes}
