"""Every built-in recipe with a torchvision counterpart *is* that torchvision model: the same
parameter count (and torchvision's published one), the published MACs (``_ops``) and the MACs
torch and fvcore count on torchvision's module, the same state_dict keys and shapes (a strict
load), and the same outputs in eval mode under torchvision's weights."""

from __future__ import annotations

import pytest

import cnnkit
from cnnkit.recipe.builtin import builtin_recipes
from tests.oracle import parity

# Built-in recipe -> torchvision.models.get_model kwargs. GoogLeNet: the recipe leaves out
# the training-only auxiliary classifiers (as the published count does); init_weights=False
# only skips torchvision's slow truncated-normal init, the weights are replaced anyway.
COUNTERPARTS: dict[str, dict[str, object]] = {
    "alexnet": {},
    "vgg16": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
    "resnet18": {},
    "resnet50": {},
    "densenet121": {},
    "resnext50_32x4d": {},
    "squeezenet1_1": {},
    "inception_v3": {"aux_logits": False, "init_weights": False},
    "mobilenet_v3_small": {},
    "mobilenet_v3_large": {},
    "efficientnet_b0": {},
    "shufflenet_v2_x1_0": {},
    "regnet_y_400mf": {},
    "convnext_tiny": {},
    "mobilenet_v2": {},
}
# Training-only heads a recipe leaves out although torchvision's published num_params counts
# them: recipe -> the head's attribute on get_model(name, weights=None), where it is built.
# Inception v3's published 5.713 GMACs leave AuxLogits out (it does not run in eval).
LEFT_OUT = {"inception_v3": "AuxLogits"}


def test_every_builtin_recipe_with_a_counterpart_is_checked(torchvision):
    classification = set(torchvision.models.list_models(module=torchvision.models))
    assert {name for name in builtin_recipes() if name in classification} == set(COUNTERPARTS)


@pytest.fixture(scope="module", params=sorted(COUNTERPARTS))
def pair(request, torchvision):
    """(recipe, cnnkit module, torchvision module with random weights, weights enum)."""
    name = request.param
    recipe = cnnkit.load_recipe(name)
    theirs = torchvision.models.get_model(name, weights=None, **COUNTERPARTS[name])
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return recipe, cnnkit.build(recipe), parity.randomise(theirs), weights


def left_out_params(name: str, published: int, torchvision) -> int:
    """Parameters of the training-only head LEFT_OUT[name], from torchvision's own module."""
    if name not in LEFT_OUT:
        return 0
    full = torchvision.models.get_model(name, weights=None, init_weights=False)
    assert parity.trainable(full) == published
    return parity.trainable(full.get_submodule(LEFT_OUT[name]))


def test_parameters_match_torchvision(pair, torchvision):
    recipe, ours, theirs, weights = pair
    published = weights.meta["num_params"]
    published -= left_out_params(recipe.name, published, torchvision)
    assert parity.cnnkit_totals(recipe.name)["params"] == published
    assert parity.trainable(ours) == parity.trainable(theirs) == published


def test_macs_match_the_published_ops(pair):
    # torchvision's meta "_ops" is GFLOPS in the MAC convention, rounded to 3 decimals.
    recipe, _, _, weights = pair
    macs = parity.cnnkit_totals(recipe.name)["macs"]
    assert round(macs / 1e9, 3) == weights.meta["_ops"]


def test_inception_v3_published_ops_leave_out_auxlogits(torchvision):
    """The published 5.713 GMACs are the eval network's: with AuxLogits (on Mixed_6e's
    768x17x17 output) they would round to 5.719."""
    full = torchvision.models.get_model("inception_v3", weights=None, init_weights=False)
    aux = parity.counted_macs(full.AuxLogits, (768, 17, 17))
    ops = torchvision.models.get_model_weights("inception_v3").DEFAULT.meta["_ops"]
    macs = parity.cnnkit_totals("inception_v3")["macs"]
    assert round(macs / 1e9, 3) == ops != round((macs + aux) / 1e9, 3)


def test_macs_match_torch_and_fvcore_on_torchvisions_module(pair):
    recipe, _, theirs, _ = pair
    shape = recipe.graph.input_shape
    macs = parity.cnnkit_totals(recipe.name)["macs"]
    assert macs == parity.counted_macs(theirs, shape) == parity.fvcore_macs(theirs, shape)


def test_state_dict_keys_and_shapes_match_torchvision(pair):
    _, ours, theirs, _ = pair
    assert parity.layout(ours) == parity.layout(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_outputs_match_torchvision_under_its_weights(pair):
    recipe, ours, theirs, _ = pair
    ours.load_state_dict(theirs.state_dict(), strict=True)
    parity.assert_same_outputs(ours, theirs, recipe.graph.input_shape)


def test_make_divisible_is_torchvisions(torchvision):
    import random

    from torchvision.models._utils import _make_divisible

    from cnnkit.recipe.expr import make_divisible

    rng = random.Random(0)
    values = [rng.uniform(0, 3000) for _ in range(3000)] + [c * w for c in range(1, 400)
        for w in (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)]  # fmt: skip
    for v in values:
        for divisor in (1, 2, 4, 8, 16):
            for least in (None, 1, 16):
                assert make_divisible(v, divisor, least) == _make_divisible(v, divisor, least)


@pytest.mark.parametrize("width_mult", [0.35, 0.75, 1.4])
def test_mobilenet_v2_width_mult_is_torchvisions(torchvision, width_mult):
    """The recipe's one width argument reproduces torchvision's ``width_mult`` exactly."""
    recipe = cnnkit.load_recipe(
        "mobilenet_v2", [f"model.blocks.mobilenet_v2.args.width_mult={width_mult}"]
    )
    theirs = parity.randomise(torchvision.models.mobilenet_v2(width_mult=width_mult))
    ours = cnnkit.build(recipe)
    assert parity.layout(ours) == parity.layout(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    parity.assert_same_outputs(ours, theirs, (3, 64, 64))
