"""What eval-mode outputs cannot show about the inverted-residual recipes (MobileNetV3,
EfficientNet): which blocks add their input back, the stochastic-depth rate of each, the
training-time settings (BN momentum, dropout p), all read from torchvision's modules, and a
training step under the same seed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.model.norm_modules import DropPath
from tests.oracle import parity

# Recipes whose torchvision blocks carry ``use_res_connect`` (InvertedResidual, MBConv).
RECIPES = ("mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")


@pytest.fixture(scope="module", params=RECIPES)
def pair(request, torchvision):
    recipe = cnnkit.load_recipe(request.param)
    return recipe, cnnkit.build(recipe), torchvision.models.get_model(request.param)


def _block_of(name: str) -> str:
    """``features.2.1.block.stochastic_depth`` or ``features.2.1.stochastic_depth`` ->
    ``features.2.1``: the torchvision block the node belongs to."""
    parts = name.split(".")
    while parts and parts[-1] in ("stochastic_depth", "block", "add"):
        parts.pop()
    return ".".join(parts)


def test_the_same_blocks_add_their_input_back(pair):
    recipe, _, theirs = pair
    residual = {n for n, m in theirs.named_modules() if getattr(m, "use_res_connect", False)}
    adds = {_block_of(n.name) for n in recipe.graph.nodes if n.kind == "add"}
    assert residual and adds == residual


def test_stochastic_depth_rates_match_torchvision(pair):
    _, ours, theirs = pair
    expected = {
        name: (m.stochastic_depth.p, m.stochastic_depth.mode)
        for name, m in theirs.named_modules()
        if getattr(m, "use_res_connect", False) and hasattr(m, "stochastic_depth")
    }
    got = {
        _block_of(name): (m.p, "row" if m.scale_by_keep else "unscaled")
        for name, m in ours.named_modules()
        if isinstance(m, DropPath)
    }
    assert got == expected  # MobileNetV3 has none, EfficientNet-B0 one per residual block
    assert all(p > 0 for p, _ in got.values())


def test_training_settings_match_torchvision(pair):
    _, ours, theirs = pair

    def norms(model: nn.Module) -> dict[str, tuple[float, float | None]]:
        return {
            name: (m.eps, m.momentum)
            for name, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d)
        }

    def dropouts(model: nn.Module) -> list[float]:
        return [m.p for m in model.modules() if isinstance(m, nn.Dropout)]

    assert norms(ours) == norms(theirs) and norms(ours)
    assert dropouts(ours) == dropouts(theirs) == [0.2]


def test_a_training_step_matches_torchvision_under_the_same_seed(pair):
    # Same weights, same random draws (dropout, then every drop path in block order): the
    # training-mode logits and the BN running statistics after the step agree, so the
    # drop-path rates and places, dropout p and BN momentum are torchvision's.
    recipe, ours, theirs = pair
    parity.randomise(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(4, *recipe.graph.input_shape, generator=torch.Generator().manual_seed(2))
    outputs = []
    for model in (theirs, ours):
        torch.manual_seed(3)
        with torch.no_grad():
            outputs.append(model.train()(x))
    expected, got = outputs
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
    after = theirs.state_dict()
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, after[key], rtol=1e-4, atol=1e-5, msg=key)
    torch.manual_seed(4)
    with torch.no_grad():
        assert not torch.allclose(ours.train()(x), got)  # the draws do change the output
