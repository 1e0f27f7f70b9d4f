"""One row per layer kind: the registry refuses a row without its ops rule or its builder,
and every consumer (ops column, model.width, --verify notes) reads the row itself."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cnnkit.analysis.costs import ops_rule, ops_rules
from cnnkit.layers import LAYERS, LayerKind, register
from cnnkit.recipe import recipe_from_text

ROW = {"ops": "ops: none.", "builder": "cnnkit.model.builders:identity"}


@pytest.mark.parametrize("missing", ["ops", "builder"])
def test_a_kind_without_ops_or_builder_cannot_be_made(missing):
    given = {k: v for k, v in ROW.items() if k != missing}
    with pytest.raises(TypeError, match=missing):
        LayerKind("newkind", "A new kind.", **given)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ops", "", "ops must state"),
        ("ops", "   ", "ops must state"),
        ("builder", "conv", "package.module:function"),
        ("builder", "cnnkit.model.builders:", "package.module:function"),
        ("builder", "cnnkit.model.builders:conv()", "package.module:function"),
    ],
)
def test_a_kind_with_an_empty_ops_rule_or_a_malformed_builder_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        LayerKind("newkind", "A new kind.", **{**ROW, field: value})


def test_the_registry_refuses_a_word_two_rows_claim():
    mine = LayerKind("mine", "A kind.", aliases=("relu",), **ROW)
    with pytest.raises(ValueError, match="'relu' already names 'relu'"):
        register([LAYERS["relu"], mine])
    with pytest.raises(TypeError, match="LayerKind"):
        register([LAYERS["relu"], "conv"])
    layers, aliases = register([mine])
    assert layers == {"mine": mine} and aliases == {"mine": "mine", "relu": "mine"}


def test_ops_rules_are_the_rows_own_text():
    assert ops_rules() == {name: kind.ops for name, kind in LAYERS.items()}
    changed = replace(LAYERS["relu"], ops="ops = 7 per output element.")
    assert ops_rule(changed) == "ops = 7 per output element."


def test_every_ops_rule_is_one_sentence_or_more_ending_in_a_full_stop():
    for name, kind in LAYERS.items():
        assert kind.ops.strip() == kind.ops and kind.ops.endswith("."), name


WIDE = "input: [3, 8, 8]\nmodel:\n  width: 0.5\n  layers:\n    - conv: 8\n    - flatten\n"
WIDE += "    - linear: 10\n"


def test_model_width_scales_exactly_the_kinds_whose_row_says_so(monkeypatch):
    recipe = recipe_from_text(WIDE, "x.yaml")
    assert [n.args["out"] for n in recipe.graph.nodes if "out" in n.args] == [4, 10]
    assert {n for n, k in LAYERS.items() if k.widens} == {"conv", "convtranspose", "linear"}
    # linear's rule widens only the channels form (ConvNeXt's pointwise layers), not a classifier
    channels = WIDE.replace("- flatten\n    - linear: 10", "- {linear: {out: 10, over: channels}}")
    recipe = recipe_from_text(channels, "x.yaml")
    assert [n.args["out"] for n in recipe.graph.nodes if "out" in n.args] == [4, 5]

    def halve(args, width):
        return {**args, "out": max(1, round(args["out"] * width))}

    monkeypatch.setitem(LAYERS, "linear", replace(LAYERS["linear"], widens=halve))
    recipe = recipe_from_text(WIDE, "x.yaml")
    assert [n.args["out"] for n in recipe.graph.nodes if "out" in n.args] == [4, 5]


def test_verify_notes_come_from_the_rows():
    pytest.importorskip("torch")
    from cnnkit.measure.verify import EXPLAINED

    assert {n: k.verify_note for n, k in LAYERS.items() if k.verify_note} == EXPLAINED
    assert set(EXPLAINED) == {"partial_conv", "subsample", "rbf"}
