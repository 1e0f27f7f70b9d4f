"""``params --verify``'s second oracle, torch's FlopCounterMode: every kind's MACs against it
on the kind's oracle case, every built-in recipe with no unexplained difference against either
oracle, and a deliberately wrong count caught by FlopCounterMode with fvcore out of the way.

FlopCounterMode is independent of fvcore (a dispatch mode over aten ops, not a jit trace):
it counts convolutions (2 * batch * prod(out spatial) * prod(weight shape), bias ignored) and
matrix products (addmm counts its mm only), 2 FLOPs per multiply-accumulate, and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.analysis.costs import graph_costs
from cnnkit.layers import LAYERS
from cnnkit.measure import verify as counting
from cnnkit.measure.flop_counter import flop_counts
from cnnkit.model import BUILDERS
from cnnkit.recipe import builtin_recipes, load_recipe
from tests.clitools import run_cli
from tests.test_layers_vs_torch import CASES

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parent.parent


def _flop_counter_macs(module: torch.nn.Module, xs: list[torch.Tensor]) -> int:
    """FlopCounterMode's total over one forward, read directly (not through cnnkit)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*xs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_kind_macs_match_flop_counter_or_the_kind_says_why(name):
    """A kind either counts exactly what FlopCounterMode counts on its case, or carries a
    ``flop_counter_note`` -- and then the two really differ there (no stale note)."""
    value, in_shapes, _ = CASES[name]
    kind = LAYERS[name]
    args = kind.resolve(value)
    ins = tuple(in_shapes)
    shape = kind.shape(args, ins)
    ours = kind.count(args, ins, shape).macs or 0
    torch.manual_seed(0)
    xs = [torch.randint(0, 50, (1, *s)) if name == "embedding" else torch.randn(1, *s) for s in ins]
    theirs = _flop_counter_macs(BUILDERS[name](args, ins, shape).eval(), xs)
    if kind.flop_counter_note is None:
        assert ours == theirs, (name, ours, theirs)
    else:
        assert ours != theirs, f"{name}: flop_counter_note but the counts agree ({ours})"


def test_cnnkit_reads_flop_counter_per_module_and_in_total():
    """The module paths cnnkit reads equal the node names, and the per-node FLOPs add up to
    the total (conv and addmm on LeNet: a hand count, not cnnkit's rules)."""
    recipe = load_recipe("lenet")
    model = counting.counting_module(recipe)
    counted = flop_counts(model, torch.zeros(1, 1, 32, 32))
    # conv 1->6 k5 at 28x28, conv 6->16 k5 at 10x10, linear 400->120->84->10
    convs = 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10
    linears = 400 * 120 + 120 * 84 + 84 * 10
    assert counted.total == {"aten.convolution": 2 * convs, "aten.addmm": 2 * linears}
    nodes = [n.name for n in recipe.graph.nodes]
    assert sum(counted.flops(n) for n in nodes) == counted.total_flops == counted.flops("")


@pytest.mark.parametrize("name", list(builtin_recipes()))
def test_builtin_recipe_verifies_against_both_oracles(name):
    recipe = load_recipe(name)
    checked = counting.verify(recipe, graph_costs(recipe.graph, 1, "fp32"))
    assert checked.versions["fvcore"] is not None
    unexplained = [d for d in checked.differences if not d.explained]
    assert checked.ok and not unexplained, unexplained
    explained = {(d.kind, d.oracle) for d in checked.differences}
    for kind, oracle in explained:
        assert kind in counting.NOTES[oracle], (kind, oracle)
    if not explained:  # then both totals are the analysis's, exactly
        assert checked.macs[0] == checked.macs[1] == checked.flop_counter_macs


def test_explained_kinds_are_the_kinds_with_a_note():
    noted = {n for n, k in LAYERS.items() if k.flop_counter_note is not None}
    assert set(counting.FLOP_COUNTER_EXPLAINED) == noted
    assert {"partial_conv", "subsample", "rbf"} <= noted


def _without_fvcore(monkeypatch) -> None:
    """fvcore not importable (its last release is from 2022): --verify falls back to
    FlopCounterMode alone."""
    for module in [m for m in sys.modules if m == "fvcore" or m.startswith("fvcore.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "fvcore", None)


def _linear_one_mac_too_many(monkeypatch) -> None:
    kind = LAYERS["linear"]

    def wrong(args, inputs, out):
        right = kind.count(args, inputs, out)
        return dataclasses.replace(right, macs=right.macs + 1)

    monkeypatch.setitem(LAYERS, "linear", dataclasses.replace(kind, count=wrong))


@pytest.mark.parametrize("wrong", [False, True])
def test_a_wrong_count_is_caught_by_flop_counter_alone(monkeypatch, wrong):
    _without_fvcore(monkeypatch)
    if wrong:
        _linear_one_mac_too_many(monkeypatch)
    r = run_cli("params", "lenet", "--verify", "--json")
    doc = json.loads(r.out)["verify"]
    assert doc["versions"]["fvcore"] is None and doc["macs"]["fvcore"] is None
    if not wrong:
        assert r.code == 0 and doc["ok"] and doc["differences"] == []
        return
    assert r.code == 1 and not doc["ok"]
    bad = {(d["name"], d["oracle"], d["analysis"] - d["reference"]) for d in doc["differences"]}
    assert bad == {(n, "flop_counter", 1) for n in ("c5", "f6", "output")}
    assert "(flop_counter)" in r.err


def test_text_output_shows_both_oracles_and_why_they_differ():
    r = run_cli("params", "lenet1998", "--verify")
    assert r.code == 0, r.err
    header = next(line for line in r.out.splitlines() if line.startswith("verify: against"))
    assert "fvcore 0." in header and header.endswith("and torch's FlopCounterMode")
    for oracle in ("fvcore", "FlopCounterMode"):
        assert f"explained: c3 (partial_conv) macs: analysis 150,000, {oracle} 240,000" in r.out
        assert f"explained: output (rbf) macs: analysis 840, {oracle} 0" in r.out
    assert "FlopCounterMode FLOPs by op: aten.addmm 20,160, aten.convolution 811,200" in r.out
    assert r.out.rstrip().endswith("verify: OK")


def test_a_count_outside_every_node_is_unexplained(monkeypatch):
    """FLOPs the nodes' modules do not add up to cannot be a kind's convention."""
    real = counting.flop_counts

    def plus_outside(model, x):
        counted = real(model, x)
        total = counted.total.copy()
        total["aten.mm"] += 2 * 5
        return dataclasses.replace(counted, total=total)

    monkeypatch.setattr(counting, "flop_counts", plus_outside)
    recipe = load_recipe("lenet")
    checked = counting.verify(recipe, graph_costs(recipe.graph, 1, "fp32"))
    assert not checked.ok
    [d] = checked.differences
    assert (d.name, d.oracle, d.reference, d.explained) == (
        counting.OUTSIDE,
        "flop_counter",
        5,
        False,
    )


def test_every_verify_key_is_documented():
    recipe = load_recipe("lenet1998")
    doc = counting.verify(recipe, graph_costs(recipe.graph, 1, "fp32")).as_dict()
    text = (ROOT / "docs" / "reference" / "json.md").read_text(encoding="utf-8")
    section = text[text.index("## `cnnkit params`") : text.index("## `cnnkit profile`")]
    keys = set(doc) | set(doc["macs"]) | set(doc["oracles"]) | set(doc["differences"][0])
    for key in keys:
        assert f'"{key}"' in section, key
