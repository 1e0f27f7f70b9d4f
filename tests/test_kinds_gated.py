"""The gated activations (silu, hardswish, hardsigmoid, gelu, mish) and the broadcast
``mul`` against torch on random configurations, and a squeeze-and-excitation block end to
end against a hand-written torch module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnkit.errors import ShapeError
from cnnkit.layers import LAYERS
from cnnkit.model import BUILDERS, build
from cnnkit.recipe import recipe_from_text
from tests.clitools import run_cli

ORACLES = {
    "silu": (None, F.silu),
    "hardswish": (None, F.hardswish),
    "hardsigmoid": (None, F.hardsigmoid),
    "gelu": ("none", lambda x: F.gelu(x)),
    "gelu_tanh": ("tanh", lambda x: F.gelu(x, approximate="tanh")),
    "mish": (None, F.mish),
}
OPS = {"silu": 2, "hardswish": 4, "hardsigmoid": 3, "gelu": 5, "gelu_tanh": 8, "mish": 5}
SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(ORACLES)), SHAPES)
def test_gated_activations_match_torch(case, shape):
    value, oracle = ORACLES[case]
    kind = LAYERS[case.split("_")[0]]
    args = kind.resolve(value)
    out = kind.shape(args, (shape,))
    x = torch.randn(2, *shape)
    module = BUILDERS[kind.name](args, (shape,), out)
    y = module(x)
    assert tuple(y.shape[1:]) == out
    torch.testing.assert_close(y, oracle(x))
    counts = kind.count(args, (shape,), out)
    assert counts.params == sum(p.numel() for p in module.parameters()) == 0
    assert counts.activations == y[0].numel()
    assert counts.ops == OPS[case] * y[0].numel()


def test_inplace_activations_overwrite_like_torch():
    for name in ("silu", "hardswish", "hardsigmoid", "mish"):
        args = LAYERS[name].resolve({"inplace": True})
        x = torch.randn(3, 4)
        expect = ORACLES[name][1](x.clone())
        BUILDERS[name](args, ((4,),), (4,))(x)
        torch.testing.assert_close(x, expect)


def test_gelu_refuses_an_unknown_approximation():
    with pytest.raises(Exception, match="none, tanh"):
        LAYERS["gelu"].resolve("erf")


AXIS = st.integers(1, 4)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda r: st.lists(
            st.lists(AXIS, min_size=r, max_size=r).map(tuple), min_size=2, max_size=3
        )
    )
)
def test_mul_broadcasts_like_torch(shapes):
    kind = LAYERS["mul"]
    args = kind.resolve(None)
    xs = [torch.randn(2, *s, requires_grad=True) for s in shapes]
    try:
        expect = torch.broadcast_shapes(*(x.shape for x in xs))
    except RuntimeError:
        with pytest.raises(ShapeError, match="do not broadcast"):
            kind.shape(args, tuple(shapes))
        return
    out = kind.shape(args, tuple(shapes))
    assert (2, *out) == tuple(expect)
    y = BUILDERS["mul"](args, tuple(shapes), out)(*xs)
    oracle = xs[0]
    for x in xs[1:]:
        oracle = torch.mul(oracle, x)
    torch.testing.assert_close(y, oracle)
    counts = kind.count(args, tuple(shapes), out)
    assert counts.ops == (len(shapes) - 1) * y[0].numel()
    assert counts.activations == y[0].numel()


def test_mul_refusal_names_both_shapes():
    with pytest.raises(ShapeError, match=r"4x3x5 and 2x1x1"):
        LAYERS["mul"].shape({}, ((4, 3, 5), (2, 1, 1)))


SE = """\
input: [16, 8, 8]
model:
  layers:
    - {conv: {out: 16, k: 3, p: 1}, name: body}
    - {adaptive_avgpool: 1, name: squeeze}
    - {conv: {out: 4, k: 1}, name: reduce}
    - relu
    - {conv: {out: 16, k: 1}, name: expand}
    - {hardsigmoid, name: gate}
    - {mul, from: [body, gate], name: scale}
"""


class HandSE(nn.Module):
    """The SE block written directly in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.reduce = nn.Conv2d(16, 4, 1)
        self.expand = nn.Conv2d(4, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(y, 1)))))
        return y * gate


def test_se_block_matches_a_hand_written_module(tmp_path):
    recipe = recipe_from_text(SE, "se.yaml")
    model = build(recipe, seed=0)
    hand = HandSE()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hand.parameters())
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), hand.parameters()):
            assert mine.shape == theirs.shape
            mine.copy_(theirs)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(model(x), hand(x))
    path = tmp_path / "se.yaml"
    path.write_text(SE)
    report = run_cli("params", str(path), "--json")
    assert report.code == 0, report.err
    macs = 16 * 16 * 9 * 64 + 16 * 4 + 4 * 16  # body, reduce, expand (bias excluded)
    assert str(macs) in report.out.replace(",", "")
    rf = run_cli("rf", str(path))
    assert rf.code == 0, rf.err
    assert "all" in rf.out
    verify = run_cli("params", str(path), "--verify")
    assert verify.code == 0, verify.out + verify.err
    assert "verify: OK" in verify.out


LOCAL_GATE = """\
input: [4, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3, p: 1}, name: body}
    - {conv: {out: 4, k: 8}, name: gate}
    - {mul, from: [body, gate], name: scale}
"""


def test_a_gate_that_does_not_see_all_leaves_the_field_unknown_not_wrong():
    """A 1x1 gate from a conv is stretched over 8x8: the span algebra would give unit i the
    gate's unit i (which does not exist); the analysis says unknown instead."""
    from cnnkit.analysis.receptive import receptive_fields

    fields = receptive_fields(recipe_from_text(LOCAL_GATE, "gate.yaml").graph)
    scale = fields[-1]
    assert scale.fields is None and not scale.sees_all
    assert "stretches a smaller input" in scale.unknown


def test_the_se_example_in_docs_recipes_builds_the_same_graph():
    import re
    from pathlib import Path

    text = Path(__file__).parent.parent.joinpath("docs", "recipes.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "squeeze" in b)
    documented = recipe_from_text(block, "docs/recipes.md").graph
    assert [(n.name, n.kind, n.shape) for n in documented.nodes] == [
        (n.name, n.kind, n.shape) for n in recipe_from_text(SE, "se.yaml").graph.nodes
    ]


@pytest.mark.parametrize("name", ["silu", "hardswish", "hardsigmoid", "mish"])
@pytest.mark.parametrize("inplace", [False, True])
def test_saves_match_autograd_in_place_or_not(name, inplace):
    """In place, torch saves a copy of the input (not the input's storage)."""
    from tests.test_memory_vs_autograd import _rule_bytes, saved_bytes

    kind = LAYERS[name]
    args = kind.resolve({"inplace": inplace})
    ins = ((3, 4, 5),)
    module = BUILDERS[name](args, ins, ins[0])
    xs = [torch.randn(2, *ins[0], requires_grad=True) * 1]  # not a leaf: in place is allowed
    assert _rule_bytes(kind.saves(args, ins, ins[0]), xs, ins[0]) == saved_bytes(module, xs, False)


@pytest.mark.parametrize("inplace", ["false", "true"])
def test_memory_estimate_of_a_gated_network_equals_autograd(inplace):
    from cnnkit.analysis.memory import saved_activation_bytes
    from tests.test_memory_vs_autograd import measured

    text = f"""\
input: [3, 8, 8]
model:
  layers:
    - conv: 4
    - {{silu: {{inplace: {inplace}}}}}
    - {{conv: 4, name: c}}
    - {{mish: {{inplace: {inplace}}}}}
    - {{mul, from: [3, c]}}
    - gap
    - linear: 2
"""
    recipe = recipe_from_text(text, "gated.yaml")
    assert saved_activation_bytes(recipe.graph, 2, "fp32") == measured(recipe, 2)
