"""The training-memory activation term against autograd itself.

The oracle runs a training-mode forward pass (and the cross-entropy loss) under
``torch.autograd.graph.saved_tensors_hooks`` and adds up the bytes of every distinct storage
autograd packs for backward, leaving out parameters and buffers (the estimate counts those
as weights). cnnkit's figure comes from the per-kind ``saves`` rules and never runs torch.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.analysis.memory import DTYPE_BYTES, saved_activation_bytes
from cnnkit.layers import LAYERS
from cnnkit.layers._kind import INT64
from cnnkit.model import BUILDERS
from cnnkit.model.build import example_input
from cnnkit.model.network import GraphModule
from cnnkit.recipe import load_recipe, recipe_from_text
from tests.clitools import run_cli
from tests.test_layers_vs_torch import CASES

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}

# Recipe -> overrides that keep the test quick: the ImageNet networks at 32x32 (AlexNet: 64x64;
# each recipe at its own input was checked once, docs/reference/params.md); the small ones as is.
RECIPES = {
    "lenet": [],
    "lenet1998": [],
    "alexnet": ["input=[3,64,64]"],
    "vgg16": ["input=[3,32,32]"],
    "googlenet": ["input=[3,32,32]"],
    "resnet18": ["input=[3,32,32]"],
    "resnet50": ["input=[3,32,32]"],
    "densenet121": ["input=[3,32,32]"],
    "mobilenet_v3_small": ["input=[3,32,32]"],
    "mobilenet_v3_large": ["input=[3,32,32]"],
    "efficientnet_b0": ["input=[3,32,32]"],
    "mobilenet_v2": ["input=[3,32,32]"],
    "textcnn": [],
    "deepconv": [],
    "resnext50_32x4d": ["input=[3,32,32]"],
    "squeezenet1_1": ["input=[3,64,64]"],
    "inception_v3": ["input=[3,75,75]"],
    "shufflenet_v2_x1_0": ["input=[3,32,32]"],
    "regnet_y_400mf": ["input=[3,32,32]"],
    "convnext_tiny": ["input=[3,32,32]"],
}


def saved_bytes(module: nn.Module, xs: list[torch.Tensor], loss: bool) -> int:
    """Bytes of the distinct non-parameter storages autograd keeps for backward."""
    weights = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(*xs)
        if loss:
            F.cross_entropy(out.float(), torch.zeros(len(out), dtype=torch.long))
    return sum(seen.values())


def quick_module(graph, dtype: torch.dtype) -> nn.Module:
    """The recipe's module with uninitialised-then-zeroed weights: what autograd keeps does
    not depend on the values, and VGG-16's initialisation alone would take seconds."""
    with torch.device("meta"):
        module = GraphModule(graph)
    module = module.to_empty(device="cpu").to(dtype).train()
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            t.zero_()
    return module


def measured(recipe, batch: int, dtype: str = "fp32") -> int:
    x = example_input(recipe, batch)
    if x.is_floating_point():
        x = x.to(TORCH_DTYPES[dtype])
    return saved_bytes(quick_module(recipe.graph, TORCH_DTYPES[dtype]), [x], loss=True)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_builtin_recipe_within_10_percent_of_autograd(name):
    recipe = load_recipe(name, RECIPES[name])
    estimate = saved_activation_bytes(recipe.graph, 2, "fp32")
    truth = measured(recipe, 2)
    assert abs(estimate / truth - 1) <= 0.10, (name, estimate, truth)


def test_params_reports_the_saved_activations_and_a_total_made_of_them():
    recipe = load_recipe("resnet18", ["input=[3,64,64]"])
    r = run_cli("params", "resnet18", "--batch", "2", "--set", "input=[3,64,64]", "--json")
    assert r.code == 0, r.err
    m = json.loads(r.out)["memory"]
    assert abs(m["activations"] / measured(recipe, 2) - 1) <= 0.10
    assert m["activations_basis"] == "saved_for_backward"
    assert m["total"] == m["weights"] + m["gradients"] + m["optimizer_state"] + m["activations"]


@pytest.mark.parametrize("dtype", ["bf16", "fp64"])
def test_indices_stay_int64_in_other_dtypes(dtype):
    """Max-pool argmax indices and cross-entropy targets are int64 whatever the dtype, so the
    activation term is not a dtype multiple of the fp32 one."""
    recipe = load_recipe("lenet")
    estimate = saved_activation_bytes(recipe.graph, 2, dtype)
    assert abs(estimate / measured(recipe, 2, dtype) - 1) <= 0.10
    scaled = saved_activation_bytes(recipe.graph, 2, "fp32") * DTYPE_BYTES[dtype] // 4
    assert estimate != scaled


def test_every_kind_states_what_it_saves():
    assert [name for name, kind in LAYERS.items() if kind.saves is None] == []


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_kind_saves_exactly_what_autograd_keeps(name):
    """One layer on inputs that need gradients (as inside a network), batch 2: the bytes
    its rule names equal the storages autograd packs, byte for byte."""
    value, in_shapes, _ = CASES[name]
    kind = LAYERS[name]
    args = kind.resolve(value)
    ins = tuple(in_shapes)
    out = kind.shape(args, ins)
    torch.manual_seed(0)
    module = BUILDERS[name](args, ins, out).train()
    if name == "embedding":
        xs = [torch.randint(0, 50, (2, *s)) for s in ins]
    else:
        xs = [torch.randn(2, *s, requires_grad=True) for s in ins]
    assert _rule_bytes(kind.saves(args, ins, out), xs, out) == saved_bytes(module, xs, False)


def _rule_bytes(saved, xs: list[torch.Tensor], out: tuple[int, ...]) -> int:
    """Bytes a rule names for one layer at batch 2 in fp32 (int64 where it says so)."""
    kept = sum(xs[i].nbytes for i in set(saved.inputs))
    if saved.output and not saved.view:
        kept += 2 * math.prod(out) * 4
    for k in saved.new:
        kept += k.elements * (2 if k.per_sample else 1) * (8 if k.dtype == INT64 else 4)
    return kept


def test_a_layer_off_the_gradient_path_keeps_nothing():
    """Dropout straight on the input batch: nothing before it needs a gradient, so autograd
    keeps no mask; the first convolution still keeps its input for the weight gradient."""
    text = "input: [3, 8, 8]\nmodel:\n  layers: [{dropout: 0.5}, {conv: 4}, flatten, {linear: 3}]"
    recipe = recipe_from_text(text)
    estimate = saved_activation_bytes(recipe.graph, 2, "fp32")
    assert estimate == measured(recipe, 2)
