"""The built-in recipes against timm's models of the same name (created without weights).

timm's resnet18, resnet50 and densenet121 have torchvision's layout (the same state_dict keys
and shapes), so they are checked like torchvision's. timm's vgg16 has the same features but
runs the classifier as convolutions (``pre_logits.fc1`` is a 7x7 conv over the 7x7 map,
``pre_logits.fc2`` a 1x1 conv, then ``head.fc``): the same parameters and MACs, different
key names and shapes, so its weights load after a reshape and the outputs are compared then.
timm has no AlexNet and no GoogLeNet (Inception v1); a test says so, to notice if it gains one.
"""

from __future__ import annotations

import pytest
import torch

import cnnkit
from tests.oracle import parity

SAME_LAYOUT = ("densenet121", "resnet18", "resnet50")
# cnnkit/torchvision key prefix -> timm's, for the classifier timm runs as convolutions.
VGG_HEAD = {
    "classifier.0": "pre_logits.fc1",
    "classifier.3": "pre_logits.fc2",
    "classifier.6": "head.fc",
}
NONE_IN_TIMM = ("alexnet", "googlenet", "inception_v1")


def test_timm_has_no_alexnet_or_googlenet(timm):
    assert [timm.list_models(f"*{name}*") for name in NONE_IN_TIMM] == [[]] * len(NONE_IN_TIMM)


@pytest.fixture(scope="module", params=[*SAME_LAYOUT, "vgg16"])
def pair(request, timm):
    """(recipe, cnnkit module, timm module with random weights)."""
    recipe = cnnkit.load_recipe(request.param)
    theirs = timm.create_model(request.param, pretrained=False)
    return recipe, cnnkit.build(recipe), parity.randomise(theirs)


def test_parameters_and_macs_match_timm(pair):
    recipe, ours, theirs = pair
    totals = parity.cnnkit_totals(recipe.name)
    assert totals["params"] == parity.trainable(ours) == parity.trainable(theirs)
    assert totals["macs"] == parity.counted_macs(theirs, recipe.graph.input_shape)


@pytest.mark.parametrize("name", SAME_LAYOUT)
def test_state_dict_keys_and_shapes_match_timm(name, timm):
    ours = cnnkit.build(cnnkit.load_recipe(name))
    theirs = timm.create_model(name, pretrained=False)
    assert parity.layout(ours) == parity.layout(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_outputs_match_timm_under_its_weights(pair):
    recipe, ours, theirs = pair
    ours.load_state_dict(timm_weights_for(recipe.name, theirs, ours), strict=True)
    parity.assert_same_outputs(ours, theirs, recipe.graph.input_shape)


def test_vgg16_features_match_timm_and_the_head_only_by_reshape(timm):
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        ours = parity.layout(cnnkit.build(cnnkit.load_recipe("vgg16")))
        theirs = parity.layout(timm.create_model("vgg16", pretrained=False))
    features = {k: v for k, v in ours.items() if k.startswith("features.")}
    assert features == {k: v for k, v in theirs.items() if k.startswith("features.")}
    head = {_timm_key(k): torch.Size(v).numel() for k, v in ours.items() if k not in features}
    assert head == {k: torch.Size(v).numel() for k, v in theirs.items() if k not in features}


def timm_weights_for(name: str, theirs: torch.nn.Module, ours: torch.nn.Module) -> dict:
    """timm's state_dict under cnnkit's keys; for vgg16 the conv classifier reshaped to linear."""
    state = theirs.state_dict()
    if name in SAME_LAYOUT:
        return state
    target = ours.state_dict()
    return {key: state[_timm_key(key)].reshape(value.shape) for key, value in target.items()}


def _timm_key(key: str) -> str:
    prefix, _, rest = key.rpartition(".")
    return f"{VGG_HEAD.get(prefix, prefix)}.{rest}"
