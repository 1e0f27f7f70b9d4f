"""Networks written from docs/recipes.md alone (issue 13), never from the shipped recipes, are
torchvision's models: the same parameters (and the published count), the MACs torch's
FlopCounterMode counts on torchvision's module, the same state_dict keys and shapes (a strict
load), the same outputs under torchvision's weights, the same shapes at every stage, and a
receptive field from ``cnnkit rf``. A failure here means the docs cannot teach that network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnkit
from tests.clitools import run_cli
from tests.oracle import parity

HERE = Path(__file__).parent / "written_from_docs"

# File stem -> torchvision.models.get_model kwargs. GoogLeNet without the training-only
# auxiliary classifiers; init_weights=False skips its slow init (the weights are replaced).
# Segmentation models without their backbone's ImageNet weights (no download), DeepLabV3
# without its training-only auxiliary head; they return {"out": logits}.
NETS: dict[str, dict[str, object]] = {
    "convnext_small": {},
    "deeplabv3_resnet50": {"aux_loss": False, "weights_backbone": None},
    "densenet169": {},
    "efficientnet_b1": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
    "lraspp_mobilenet_v3_large": {"weights_backbone": None},
    "mnasnet0_5": {},
    "mnasnet1_0": {},
    "mobilenet_v3_large": {},
    "regnet_x_400mf": {},
    "regnet_y_800mf": {},
    "resnet34": {},
    "shufflenet_v2_x0_5": {},
    "vgg11_bn": {},
    "wide_resnet50_2": {},
}


def test_every_written_network_is_checked():
    assert {path.stem for path in HERE.glob("*.yaml")} == set(NETS)


@pytest.fixture(scope="module", params=sorted(NETS))
def pair(request, torchvision):
    """(recipe path, recipe, cnnkit module, torchvision module with random weights, tv name)."""
    name = request.param
    path = str(HERE / f"{name}.yaml")
    recipe = cnnkit.load_recipe(path)
    theirs = torchvision.models.get_model(name, weights=None, **NETS[name])
    return path, recipe, cnnkit.build(recipe), parity.randomise(theirs), name


def test_parameters_match_torchvision(pair, torchvision):
    path, _, ours, theirs, name = pair
    published = torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"]
    if NETS[name].get("aux_loss") is False:  # the published count includes the aux head
        kwargs = {**NETS[name], "aux_loss": True}
        with_aux = torchvision.models.get_model(name, weights=None, **kwargs)
        assert parity.trainable(with_aux) == published
        published = parity.trainable(theirs)
    assert parity.cnnkit_totals(path)["params"] == published
    assert parity.trainable(ours) == parity.trainable(theirs) == published


def test_macs_match_flop_counter_on_torchvisions_module(pair):
    path, recipe, _, theirs, _ = pair
    macs = parity.cnnkit_totals(path)["macs"]
    assert macs == parity.counted_macs(theirs, recipe.graph.input_shape)


def test_state_dict_keys_and_shapes_match_torchvision(pair):
    _, _, ours, theirs, _ = pair
    assert parity.layout(ours) == parity.layout(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_outputs_match_torchvision_under_its_weights(pair):
    _, recipe, ours, theirs, _ = pair
    ours.load_state_dict(theirs.state_dict(), strict=True)
    parity.assert_same_outputs(ours, _Logits(theirs), recipe.graph.input_shape)


class _Logits(nn.Module):
    """A segmentation model's ``["out"]``; a classifier's output as it is."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out["out"] if isinstance(out, dict) else out


def _stages(model: nn.Module) -> dict[str, nn.Module]:
    """torchvision's children, and the children of its nn.Sequential children (VGG's
    ``features.3``, ResNet's ``layer2.1``): the places a stage's output shape is seen. A
    segmentation backbone (an IntermediateLayerGetter, a ModuleDict returning a dict) is
    replaced by its children (``backbone.layer1``)."""
    stages: dict[str, nn.Module] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleDict):
            stages.update({f"{name}.{sub}": mod for sub, mod in child.named_children()})
            continue
        stages[name] = child
        if isinstance(child, nn.Sequential):
            stages.update({f"{name}.{sub}": mod for sub, mod in child.named_children()})
    return stages


def _stage_shapes(model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each stage's output shape (without the batch) on one image, from forward hooks."""
    seen: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def record(_module, _args, output) -> None:
            if isinstance(output, torch.Tensor):
                seen.setdefault(name, tuple(output.shape[1:]))

        return record

    handles = [mod.register_forward_hook(hook(name)) for name, mod in _stages(model).items()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return seen


def _output_of(layers: list[dict], name: str) -> tuple[int, ...] | None:
    """The shape of node ``name``, or of the last node inside group ``name``."""
    inside = [row for row in layers if row["name"] == name or row["name"].startswith(name + ".")]
    return tuple(inside[-1]["output"]) if inside else None


def test_stage_shapes_match_torchvision(pair):
    path, recipe, _, theirs, _ = pair
    result = run_cli("params", path, "--json")
    assert result.code == 0, result.err
    layers = json.loads(result.out)["layers"]
    expected = _stage_shapes(theirs, recipe.graph.input_shape)
    stateful = {name for name, mod in _stages(theirs).items() if mod.state_dict()}
    got = {name: _output_of(layers, name) for name in expected}
    matched = {name for name, shape in got.items() if shape is not None}
    assert stateful <= matched  # every stage with weights has a counterpart of that name
    assert {name: got[name] for name in matched} == {name: expected[name] for name in matched}


def test_rf_reports_a_field(pair):
    path = pair[0]
    result = run_cli("rf", path, "--json")
    assert result.code == 0, result.err
    field = json.loads(result.out)["receptive_field"]
    assert field and all(isinstance(size, int) and size > 1 for size in field)
