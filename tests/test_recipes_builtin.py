"""Every built-in recipe: analysed counts == built module == published; shapes == PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cnnkit
from cnnkit.analysis import node_counts, shapes, totals
from cnnkit.model import example_input

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))
# Published trainable parameter counts (torchvision's num_params; the papers for LeNet).
PUBLISHED = {
    "lenet": 61_706,
    "lenet1998": 60_000,
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "resnext50_32x4d": 25_028_904,
    "squeezenet1_1": 1_235_496,
    "inception_v3": 27_161_264 - 3_326_696,  # published less AuxLogits (left out: training-only)
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
    "efficientnet_b0": 5_288_548,
    "shufflenet_v2_x1_0": 2_278_604,
    "regnet_y_400mf": 4_344_144,
    "convnext_tiny": 28_589_128,
    "mobilenet_v2": 3_504_872,
    "textcnn": 20_000 * 300 + 3 * 100 * 300 * 4 + 300 + 300 * 2 + 2,  # 3+4+5 = 12 = 3*4
    "deepconv": (1 * 9 + 1) * 16 + 9 * (16 * 9 + 1) * 16 + 16 * 10 + 10,  # not published: ours
    # torchvision's fcn_resnet50 with aux_loss=False; its published 35,322,218 adds the
    # training-only auxiliary head (tests/oracle/test_segmentation.py checks both).
    "fcn_resnet50": 32_957_013,
    # milesial/Pytorch-UNet's bilinear UNet(3, 2): DoubleConv(in, out, mid) is two bias-free
    # 3x3 convs and two BNs; not published as a number (tests/test_unet.py: its torch module).
    "unet": sum(
        9 * cin * mid + 2 * mid + 9 * mid * out + 2 * out
        for cin, mid, out in [(3, 64, 64), (64, 128, 128), (128, 256, 256), (256, 512, 512)]
        + [(512, 512, 512), (1024, 512, 256), (512, 256, 128), (256, 128, 64), (128, 64, 64)]
    )
    + 64 * 2
    + 2,
}


def test_every_recipe_has_a_published_count():
    assert {p.stem for p in RECIPES} == set(PUBLISHED)


@pytest.fixture(scope="module", params=RECIPES, ids=lambda p: p.stem)
def built(request):
    recipe = cnnkit.load_recipe(request.param)
    return recipe, cnnkit.build(recipe).eval()


def test_counts_match_module_and_publication(built):
    recipe, model = built
    counts = totals(recipe.graph)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts.params == trainable == PUBLISHED[recipe.name]
    assert counts.buffers == sum(b.numel() for b in model.buffers())


def test_every_node_shape_matches_pytorch(built):
    recipe, model = built
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            seen[name] = tuple(out.shape[1:])

        return hook

    hooks = [
        model.get_submodule(node.name).register_forward_hook(record(node.name))
        for node in recipe.graph.nodes
    ]
    with torch.no_grad():
        out = model(example_input(recipe))
    for hook in hooks:
        hook.remove()
    expected = shapes(recipe.graph)
    assert seen == {n: s for n, s in expected.items() if n != "input"}
    assert tuple(out.shape[1:]) == recipe.graph.output_shape


def test_recipe_starts_with_a_paper_and_input_comment(built):
    recipe, _ = built
    assert recipe.description
    assert any(ch.isdigit() for ch in recipe.description)


def test_node_counts_sum_to_totals(built):
    recipe, _ = built
    per_node = node_counts(recipe.graph)
    assert set(per_node) == {n.name for n in recipe.graph.nodes}
    assert sum(c.params for c in per_node.values()) == totals(recipe.graph).params


def test_lenet1998_layer_counts_are_the_papers():
    recipe = cnnkit.load_recipe("lenet1998")
    per_node = node_counts(recipe.graph)
    paper = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0}
    assert {name: per_node[name].params for name in paper} == paper
    assert per_node["output"].buffers == 840


def test_resnet_state_dict_keys_read_like_torchvision():
    model = cnnkit.build(cnnkit.load_recipe("resnet18"))
    keys = set(model.state_dict())
    for key in (
        "conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.running_var",
        "fc.bias",
    ):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys  # identity shortcut: no parameters


def test_builtin_recipes_by_name_and_path_agree():
    by_name = cnnkit.load_recipe("lenet")
    by_path = cnnkit.load_recipe(RECIPES[[p.stem for p in RECIPES].index("lenet")])
    assert totals(by_name.graph) == totals(by_path.graph)
