"""The inverted-residual recipes (MobileNetV3, EfficientNet): exactly the blocks that keep
their shape add their input back (so each row's ``inp`` agrees with the real input), and under
``model.width`` the residual and expansion choices, read from each row, stay the same: a
narrower network keeps its structure, builds, and runs with the shapes the analysis infers.
torchvision parity at width 1 is the oracle's (tests/oracle/test_torchvision.py)."""

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


def block_shapes(recipe) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each inverted-residual block (``features.3``, ``features.2.1``) -> (input shape, output
    shape), from the analysis' shapes."""
    found: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for node in recipe.graph.nodes:
        if ".block." not in node.name:
            continue
        block = node.name.split(".block.")[0]
        given = found[block][0] if block in found else recipe.graph.input_shapes(node)[0]
        found[block] = (given, node.shape)
    for node in recipe.graph.nodes:  # the add, after the block's layers, is its output
        if node.kind == "add":
            block = node.name.rsplit(".", 1)[0]
            found[block] = (found[block][0], node.shape)
    return found


@pytest.mark.parametrize("width", ["1", "0.5"])
@pytest.mark.parametrize("name", RECIPES)
def test_exactly_the_blocks_that_keep_their_shape_add_their_input_back(name, width):
    recipe = load_recipe(name, [*SMALL, f"model.width={width}"])
    adds, _ = structure(recipe)
    kept = {block for block, (given, out) in block_shapes(recipe).items() if given == out}
    assert kept and adds == kept


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
