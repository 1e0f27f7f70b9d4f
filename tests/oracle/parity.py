"""Checks shared by the torchvision and timm oracles: each compares a cnnkit module with a
module of the other library, never with cnnkit's own numbers."""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.clitools import run_cli

BATCH = 2  # two different images: a layer that mixes the batch (a wrong flatten) shows


def cnnkit_totals(recipe: str) -> dict[str, int]:
    """``cnnkit params RECIPE --json`` totals, as a user or a CI script reads them."""
    result = run_cli("params", recipe, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["totals"]


def layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape (parameters and buffers, BN's num_batches_tracked included)."""
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def counted_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """torch's own FlopCounterMode on one image: conv + matmul FLOPs (bias excluded) / 2."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def fvcore_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """fvcore's conv + linear/addmm/matmul count (its "flop" is one multiply-add)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, *shape))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_operator = analysis.by_operator()
    return sum(by_operator.get(op, 0) for op in ("conv", "linear", "addmm", "matmul"))


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and buffer drawn at random (BN running statistics too, variances
    positive), so that eval-mode batch norm is not the identity and a wrong eps, a missing
    layer or swapped weights change the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            fresh = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                fresh = 0.5 + torch.rand(tensor.shape, generator=generator)
            elif tensor.dim() > 1:  # weights: keep activations of deep stacks in range
                fan_in = tensor[0].numel()
                fresh = fresh * (2.0 / fan_in) ** 0.5
            tensor.copy_(fresh)
    return model


def assert_same_outputs(ours: nn.Module, theirs: nn.Module, shape: tuple[int, ...]) -> None:
    """Both modules in eval mode on the same random batch give the same logits."""
    x = torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs.eval()(x)
        got = ours.eval()(x)
    assert got.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * scale)
    assert not torch.allclose(expected[0], expected[1])  # the two images really differ
