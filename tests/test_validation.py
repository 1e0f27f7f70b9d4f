"""One value rule for every recipe section: layer arguments, the model section and the
train:/data: sections take and refuse the same numbers (NaN and infinities were layer
arguments, a NaN slope silently gave NaN outputs), each error one line at file:line: key."""

from __future__ import annotations

import math

import pytest

from cnnkit import validation as v
from cnnkit.errors import RecipeError
from cnnkit.recipe import recipe_from_text
from cnnkit.train.config import NoLocation, parse_train

HEAD = "input: [3, 8, 8]\nmodel:\n  layers:\n"
VALUES = ["1e-4", "5e-324", "0.5", "1", "1.0e+6", "1.5e6", ".nan", ".inf", "-.inf", "1e300", "true"]


def _layer_takes(value: str) -> bool:
    """lrn's alpha: a layer number with no bounds."""
    try:
        recipe_from_text(HEAD + f"    - lrn: {{alpha: {value}}}\n", "x.yaml")
    except RecipeError as err:
        assert str(err).count("\n") == 0 and "x.yaml:4: model.layers[0].lrn.alpha: " in str(err)
        return False
    return True


def _train_takes(value: str) -> bool:
    """train.weight_decay: a train number, non-negative."""
    text = HEAD + "    - flatten\ntrain:\n" + f"  weight_decay: {value}\n"
    recipe = recipe_from_text(text, "x.yaml")
    try:
        parse_train(recipe.train, recipe.source)
    except RecipeError as err:
        assert str(err).count("\n") == 0 and "x.yaml:6: train.weight_decay: " in str(err)
        return False
    return True


@pytest.mark.parametrize("value", VALUES)
def test_layer_and_train_numbers_follow_one_rule(value):
    assert _layer_takes(value) == _train_takes(value), value


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e300", "-1e300"])
def test_no_layer_argument_takes_a_non_finite_or_absurd_number(value):
    for layer in (
        f"lrn: {{alpha: {value}}}",
        f"leaky_relu: {value}",
        f"bn: {{eps: {value}}}",
        f"scaled_tanh: {{a: {value}}}",
        f"dropout: {value}",
    ):
        with pytest.raises(RecipeError, match=r"^x\.yaml:4: model\.layers\[0\]\.\w+"):
            recipe_from_text(HEAD + f"    - {layer}\n", "x.yaml")


def test_small_exponent_floats_are_taken_everywhere():
    recipe = recipe_from_text(
        HEAD + "    - lrn: {alpha: 1e-4}\n    - bn: {eps: 1e-4}\ntrain:\n  lr: 1e-4\n", "x.yaml"
    )
    assert [n.args.get("alpha", n.args.get("eps")) for n in recipe.graph.nodes] == [1e-4, 1e-4]
    assert parse_train(recipe.train, recipe.source).lr == 1e-4


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", str(2**63), "model.seed: expected a non-negative integer below 2^63"),
        ("seed", "-1", "model.seed: expected a non-negative integer below 2^63"),
        ("depth", ".nan", "model.depth: expected a positive number up to 1000"),
        ("width", "0", "model.width: expected a positive number up to 1000"),
    ],
)
def test_model_section_uses_the_same_rules(key, value, message):
    text = f"input: [3, 8, 8]\nmodel:\n  {key}: {value}\n  layers:\n    - flatten\n"
    with pytest.raises(RecipeError) as caught:
        recipe_from_text(text, "x.yaml")
    assert str(caught.value).startswith(f"x.yaml:3: {message}, got ")


def test_model_seed_takes_what_torch_takes():
    text = f"input: [3, 8, 8]\nmodel:\n  seed: {2**63 - 1}\n  layers:\n    - flatten\n"
    assert recipe_from_text(text, "x.yaml").seed == 2**63 - 1


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (v.number(), math.nan, "expected a number, got nan"),
        (v.number(), 2e6, "expected a number of magnitude up to 1e+06, got 2000000.0"),
        (v.number(0, open_low=True), 0, "expected a positive number, got 0"),
        (v.number(0, open_low=True), math.inf, "expected a positive number up to 1e+06, got inf"),
        (v.number(0), -math.inf, "expected a non-negative number, got -inf"),
        (v.number(0, 1), 1.5, "expected a number in [0, 1], got 1.5"),
        (v.number(0, 1, open_high=True), 1, "expected a number in [0, 1), got 1"),
        (v.number(0, 5, open_low=True), 0, "expected a positive number up to 5, got 0"),
        (v.number(), True, "expected a number, got True"),
        (v.integer(1), 0, "expected a positive integer, got 0"),
        (v.integer(0, 2**63), 2**63, f"expected a non-negative integer below 2^63, got {2**63}"),
        (v.integer(2, 11), 11, "expected a positive integer up to 10, got 11"),
        (v.boolean, 1, "expected true or false, got 1"),
    ],
)
def test_messages(check, value, expected):
    with pytest.raises(ValueError) as caught:
        check(value)
    assert str(caught.value) == expected


def test_bounds_are_inclusive_unless_open():
    assert v.number(0, 1)(1) == 1.0 and v.number(0, 1)(0) == 0.0
    assert v.number(0, 1, open_high=True)(0) == 0.0
    assert v.number()(-1e6) == -1e6 and v.number()(1e6) == 1e6
    assert v.optional(v.number())(None) is None
    with pytest.raises(RecipeError, match=r"train\.momentum: expected a number in \[0, 1\)"):
        parse_train({"momentum": 1.0}, NoLocation())
