"""The built-in fcn_resnet50 recipe *is* torchvision's fcn_resnet50(num_classes=21,
aux_loss=False): the same parameters, state_dict layout (a strict load) and outputs (its
``["out"]``) under torchvision's weights, and MACs equal to torch's FlopCounterMode and
fvcore on torchvision's module.

Sizes: the published figures are at 3x520x520, where the analysis is checked (it is pure
Python); torchvision's module runs at a smaller, odd input (3x97x131, so the final resize is
not a whole factor) to keep the oracle stage fast, with the recipe's input overridden to it.
torchvision's published num_params (35,322,218) and _ops (152.717) include the auxiliary
FCN head on layer3 (aux_loss=True, used in training only); the recipe leaves it out, so
those are checked as the recipe's figures plus the auxiliary head's, counted on
torchvision's own aux_classifier.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.analysis import totals
from tests.oracle import parity

SMALL = (3, 97, 131)
KWARGS = {"weights": None, "weights_backbone": None, "num_classes": 21}


class Out(nn.Module):
    """torchvision's segmentation models return {"out": logits}: the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


@pytest.fixture(scope="module")
def segmentation(torchvision):
    return torchvision.models.segmentation


@pytest.fixture(scope="module")
def pair(segmentation):
    """(recipe at the small input, cnnkit module, torchvision module with random weights)."""
    recipe = cnnkit.load_recipe("fcn_resnet50", [f"input=[{', '.join(map(str, SMALL))}]"])
    assert recipe.graph.input_shape == SMALL
    theirs = segmentation.fcn_resnet50(aux_loss=False, **KWARGS)
    return recipe, cnnkit.build(recipe), parity.randomise(theirs)


def _aux_head(segmentation) -> nn.Module:
    return segmentation.fcn_resnet50(aux_loss=True, **KWARGS).aux_classifier


def test_parameters_match_torchvision_and_the_published_count_with_its_aux_head(pair, segmentation):
    recipe, ours, theirs = pair
    weights = segmentation.FCN_ResNet50_Weights.DEFAULT
    params = parity.cnnkit_totals("fcn_resnet50")["params"]
    assert params == parity.trainable(ours) == parity.trainable(theirs)
    assert params + parity.trainable(_aux_head(segmentation)) == weights.meta["num_params"]


def test_macs_match_the_published_ops_with_the_aux_head(segmentation):
    # _ops is GFLOPS in the MAC convention at 3x520x520; the aux head reads layer3 (1024 x
    # 65 x 65) and its own upsample adds no MACs (FlopCounterMode counts none).
    weights = segmentation.FCN_ResNet50_Weights.DEFAULT
    macs = parity.cnnkit_totals("fcn_resnet50")["macs"]
    aux = parity.counted_macs(_aux_head(segmentation), (1024, 65, 65))
    assert round((macs + aux) / 1e9, 3) == weights.meta["_ops"]


def test_macs_match_torch_and_fvcore_on_torchvisions_module(pair):
    recipe, _, theirs = pair
    macs = totals(recipe.graph).macs
    assert macs == parity.counted_macs(Out(theirs), SMALL) == parity.fvcore_macs(Out(theirs), SMALL)


def test_state_dict_keys_and_shapes_match_torchvision(pair):
    _, ours, theirs = pair
    assert parity.layout(ours) == parity.layout(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_outputs_match_torchvision_under_its_weights(pair):
    recipe, ours, theirs = pair
    ours.load_state_dict(theirs.state_dict(), strict=True)
    parity.assert_same_outputs(ours, Out(theirs), SMALL)
