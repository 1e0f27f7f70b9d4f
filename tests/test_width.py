"""`model.width` scales conv channels; the analysis and the built module still agree."""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.analysis import totals
from cnnkit.layers._kind import widened
from cnnkit.model.build import example_input
from cnnkit.recipe import load_recipe


@pytest.mark.parametrize("name", ["lenet", "resnet18", "googlenet", "densenet121"])
def test_width_half_builds_what_the_analysis_counts(name):
    recipe = load_recipe(name, ["model.width=0.5"])
    base = load_recipe(name)
    model = cnnkit.build(recipe)
    assert totals(recipe.graph).params == sum(p.numel() for p in model.parameters())
    assert totals(recipe.graph).params < totals(base.graph).params
    shapes = {}
    hooks = [
        model.get_submodule(n.name).register_forward_hook(
            lambda m, i, o, n=n.name: shapes.__setitem__(n, tuple(o.shape[1:]))
        )
        for n in recipe.graph.nodes
    ]
    with torch.no_grad():
        model.eval()(example_input(recipe))
    for h in hooks:
        h.remove()
    assert shapes == {n.name: n.shape for n in recipe.graph.nodes}
    first_conv = next(n for n in recipe.graph.nodes if n.kind == "conv")
    base_conv = next(n for n in base.graph.nodes if n.kind == "conv")
    assert first_conv.args["out"] == widened(base_conv.args["out"], 0.5)[0]
    # The classifier keeps its classes.
    assert recipe.graph.output_shape == base.graph.output_shape


def test_widened_rounds_to_whole_groups():
    assert widened(64, 0.5) == (32, 1)
    assert widened(6, 0.1) == (1, 1)
    assert widened(96, 0.5, groups=96) == (48, 48)  # depthwise stays depthwise
    assert widened(256, 0.5, groups=32) == (128, 32)  # the cardinality is kept
    assert widened(32, 0.01, groups=4) == (4, 4)


def test_depthwise_separable_stack_widens_consistently():
    text = (
        "input: [3, 16, 16]\nmodel:\n  width: 0.5\n  layers:\n"
        "    - conv: {out: 32, k: 3, p: 1}\n"
        "    - conv: {out: 32, k: 3, p: 1, groups: 32}\n"
        "    - conv: {out: 64, k: 1}\n"
    )
    from cnnkit.recipe import recipe_from_text

    recipe = recipe_from_text(text)
    outs = [(n.args["out"], n.args["groups"]) for n in recipe.graph.nodes]
    assert outs == [(16, 1), (16, 16), (32, 1)]
    model = cnnkit.build(recipe)
    assert totals(recipe.graph).params == sum(p.numel() for p in model.parameters())
