"""Structures expand into the expected flat graphs, and those graphs run in PyTorch."""

from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.analysis import totals
from cnnkit.errors import MissingDependencyError
from cnnkit.model.init import SCHEMES
from cnnkit.recipe import recipe_from_text
from cnnkit.recipe.types import INIT_SCHEMES


def load(layers: str, input: str = "[3, 8, 8]", extra: str = ""):
    return recipe_from_text(f"input: {input}\nmodel:\n{extra}  layers:\n{layers}")


def run(recipe):
    model = cnnkit.build(recipe).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *recipe.input_shape))
    assert tuple(out.shape[1:]) == recipe.graph.output_shape
    assert sum(p.numel() for p in model.parameters()) == totals(recipe.graph).params
    return model


def kinds(recipe):
    return [(n.name, n.kind) for n in recipe.graph.nodes]


def test_residual_identity_when_shapes_agree():
    r = load("    - residual: {layers: [{conv: {out: 3, p: 1}}, relu]}\n")
    assert kinds(r) == [("0.0", "conv"), ("0.1", "relu"), ("0.add", "add")]
    assert r.graph["0.add"].inputs == ("0.1", "input")
    run(r)


def test_residual_projection_matches_stride_and_channels():
    r = load("    - residual: {layers: [{conv: {out: 8, s: 2, p: 1}}], after: relu}\n")
    assert [k for _, k in kinds(r)] == ["conv", "conv", "bn", "add", "relu"]
    proj = r.graph["0.downsample.0"]
    assert (
        proj.args["kernel"] == 1
        and proj.args["stride"] == [2, 2]
        or proj.args["stride"]
        == (
            2,
            2,
        )
    )
    assert proj.shape == (8, 4, 4)
    run(r)


def test_residual_user_shortcut_and_forced_projection():
    r = load(
        "    - residual:\n        layers: [{conv: {out: 3, p: 1}}]\n"
        "        shortcut: [{avgpool: {k: 3, s: 1, p: 1}}]\n"
    )
    assert ("0.downsample.0", "avgpool") in kinds(r)
    forced = load("    - residual: {layers: [relu], shortcut: projection}\n")
    assert ("0.downsample.0", "conv") in kinds(forced)
    run(r)
    run(forced)


def test_parallel_add_and_concat():
    r = load(
        "    - parallel:\n        merge: add\n        branches:\n"
        "          a: [{conv: {out: 4, k: 1}}]\n          b: {conv: {out: 4, k: 3, p: 1}}\n"
        "    - parallel: {branches: [[maxpool: 2], [avgpool: 2]]}\n"
    )
    assert r.graph["1.concat"].shape == (8, 4, 4)
    assert r.graph["0.b"].kind == "conv"
    run(r)


def test_dense_block_concatenates_all_earlier_outputs():
    r = load("    - dense: {times: 3, names: 'layer{n}', layers: [{conv: {out: 2, p: 1}}, relu]}\n")
    assert r.graph["0.cat"].shape == (3 + 3 * 2, 8, 8)
    assert r.graph["0.cat2"].inputs == ("input", "0.layer1.1", "0.layer2.1")
    run(r)


def test_explicit_graph_nodes_with_from():
    r = load(
        "    - {conv: {out: 4, k: 1}, id: a}\n"
        "    - {conv: {out: 4, k: 3, p: 1}, id: b, from: input}\n"
        "    - {concat, from: [a, b], id: both}\n"
        "    - {add, from: [both, both]}\n"
    )
    assert r.graph["b"].inputs == ("input",)
    assert r.graph.output_shape == (8, 8, 8)
    run(r)


def test_blocks_with_arguments_expressions_and_inline_repeat():
    extra = (
        "  blocks:\n    cbr:\n      args: {out: ~, k: 3}\n      layers:\n"
        "        - {conv: {out: $out, k: $k, p: '${k // 2}'}, name: conv}\n"
        "        - {bn, name: bn}\n        - relu\n"
    )
    r = load(
        "    - {cbr: {out: 4}, name: stem}\n"
        "    - name: stage\n      sequence:\n        - cbr: {out: 6, k: 5}\n"
        "        - repeat: {times: 2, layers: {cbr: 6}}\n",
        extra=extra,
    )
    names = [n for n, _ in kinds(r)]
    assert names[:3] == ["stem.conv", "stem.bn", "stem.2"]
    assert "stage.2.conv" in names and "stage.3.conv" not in names
    assert r.graph["stage.0.conv"].args["padding"] == 2
    model = run(r)
    assert "stage.1.conv.weight" in model.state_dict()


def test_depth_multiplier_scales_repeats():
    layers = "    - repeat: {times: 2, layers: {conv: {out: 3, p: 1}}}\n"
    assert len(load(layers).graph.nodes) == 2
    assert len(load(layers, extra="  depth: 2\n").graph.nodes) == 4


def test_one_dimensional_input():
    r = load("    - conv: {out: 4, k: 3, p: same}\n    - maxpool: 2\n    - bn\n", "[2, 20]")
    assert r.graph.output_shape == (4, 10)
    run(r)


def test_same_seed_same_weights_and_rng_untouched():
    r = cnnkit.load_recipe("lenet")
    state = torch.random.get_rng_state()
    a, b = cnnkit.build(r), cnnkit.build(r)
    assert torch.equal(torch.random.get_rng_state(), state)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    c = cnnkit.build(r, seed=1)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_init_scheme_builds(scheme):
    r = load(
        "    - {conv: {out: 4}, init: zeros}\n    - bn\n    - flatten\n    - linear: 3\n",
        extra=f"  init: {scheme}\n",
    )
    model = cnnkit.build(r)
    assert torch.count_nonzero(model.get_submodule("0").weight) == 0
    assert torch.all(model.get_submodule("0").bias == 0) or scheme == "default"


def test_init_names_agree_between_the_two_sides():
    assert set(INIT_SCHEMES) == set(SCHEMES)


def test_external_model_needs_the_vision_extra():
    r = recipe_from_text("input: [3, 224, 224]\nmodel: {torchvision: resnet50}\n")
    assert r.graph is None and r.external.name == "resnet50"
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"pip install 'cnnkit\[vision\]'"):
            cnnkit.build(r)
    else:  # pragma: no cover - only where torchvision is installed
        model = cnnkit.build(r)
        assert sum(p.numel() for p in model.parameters()) == 25_557_032


def test_names_templates_count_copies_wherever_the_repeat_sits():
    """{n} is the copy number (1, 2), not the repeat's position in its sequence."""
    body = "layers: [{conv: {out: 3, p: 1}, name: c}, relu]"
    r = load(
        "    - conv: {out: 3, p: 1}\n    - relu\n"
        f"    - repeat: {{times: 2, names: 'block{{n}}', {body}}}\n"
        f"    - repeat: {{times: 2, names: 'unit{{i}}', {body}}}\n"
        f"    - {{dense: {{times: 2, names: 'layer{{n}}', {body}}}, name: d}}\n"
    )
    model = run(r)
    keys = {k for k in model.state_dict() if k.endswith("c.weight")}
    expected = {"block1", "block2", "unit0", "unit1", "d.layer1", "d.layer2"}
    assert keys == {f"{name}.c.weight" for name in expected}


def test_unnamed_repeat_without_names_takes_the_next_positions():
    r = load("    - relu\n    - repeat: {times: 2, layers: {conv: {out: 3, p: 1}}}\n    - relu\n")
    assert kinds(r) == [("0", "relu"), ("1", "conv"), ("2", "conv"), ("3", "relu")]


@pytest.mark.parametrize("names", ["'unit$i'", "'u$n{n}'", "'$n'"])
def test_dollar_in_names_is_an_error(names):
    from cnnkit.errors import RecipeError

    with pytest.raises(RecipeError, match=r"model.layers\[0\].repeat.names: .*\{i\}.*\$"):
        load(f"    - repeat: {{times: 2, names: {names}, layers: relu}}\n")


def test_names_that_torch_cannot_use_are_an_error():
    from cnnkit.errors import RecipeError

    with pytest.raises(RecipeError, match=r"not starting with _ or -, got 'a.1'"):
        load("    - repeat: {times: 2, names: 'a.{n}', layers: relu}\n")


def test_dense_is_the_structure_and_linear_says_so():
    from cnnkit.errors import RecipeError
    from cnnkit.layers import lookup

    assert lookup("dense") is None and lookup("fc").name == "linear"
    for item in ("dense: 10", "dense: {out: 10}"):
        with pytest.raises(RecipeError, match="DenseNet structure.*write linear"):
            load(f"    - flatten\n    - {item}\n")
    run(load("    - flatten\n    - fc: 10\n"))
