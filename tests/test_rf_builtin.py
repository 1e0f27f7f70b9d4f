"""`cnnkit rf NAME --json` on every recipe in recipes/ (so a recipe added there is covered
without touching this file): a receptive field is reported for the output, consistent with the
per-layer table, and on the small recipes the gradient probe (`--verify`) agrees with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cnnkit.recipe import load_recipe
from tests.clitools import run_cli

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
# The probe back-propagates from a few output units at fp64: quick on a small input only.
SMALL_INPUT = 4096


def _rf(*args: str) -> dict:
    r = run_cli("rf", *args, "--json")
    assert r.code == 0, r.err[-500:]
    return json.loads(r.out)


def test_the_recipes_folder_is_found():
    assert {"lenet", "resnet50"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_rf_reports_a_field_for_the_output(name):
    doc = _rf(name)
    at = doc["at"]
    spatial = len(at["axes"])  # a token input (textcnn) has no channel axis
    assert spatial >= 1 and len(at["input"]) == spatial
    for key in ("receptive_field", "stride", "padding"):
        assert doc[key] == at[key], key
        assert isinstance(doc[key], list) and len(doc[key]) == spatial, key
    assert all(isinstance(r, int) and r >= 1 for r in doc["receptive_field"])
    assert all(s > 0 for s in doc["stride"])
    assert all(lo <= hi for lo, hi in zip(at["receptive_field_min"], doc["receptive_field"]))
    rows = {layer["name"]: layer for layer in doc["layers"]}
    assert rows[at["name"]]["receptive_field"] == doc["receptive_field"]
    # `at` is the last layer with a field: every layer after it sees the whole input
    names = [layer["name"] for layer in doc["layers"]]
    after = doc["layers"][names.index(at["name"]) + 1 :]
    assert all(layer["sees_all"] or layer["pointwise"] for layer in after)
    assert doc["output_sees_all"] is any(layer["sees_all"] for layer in after)


SMALL = [n for n in RECIPES if math.prod(load_recipe(n).input_shape) <= SMALL_INPUT]


def test_some_recipes_are_small_enough_to_probe():
    assert {"lenet", "deepconv"} <= set(SMALL)


@pytest.mark.parametrize("name", SMALL)
def test_the_gradient_probe_agrees_on_small_recipes(name):
    r = run_cli("rf", name, "--verify", "--json")
    assert r.code == 0, r.err[-500:]
    checked = json.loads(r.out)["verify"]
    assert checked["ok"] is True
    assert checked["units"] and all(unit["ok"] for unit in checked["units"])
    for unit in checked["units"]:
        for axis in unit["axes"]:
            assert axis["match"] in ("exact", "inside"), (unit["unit"], axis)


def test_the_commands_leave_the_garbage_collector_as_they_found_it():
    """`rf` and `params` pause Python's cyclic collector while they analyse (the bench's
    superlinear full collections); it must be back on afterwards, also after an error."""
    import gc

    assert gc.isenabled()
    assert run_cli("rf", "lenet", "--json").code == 0 and gc.isenabled()
    assert run_cli("params", "lenet", "--json").code == 0 and gc.isenabled()
    assert run_cli("rf", "lenet", "--at", "no-such-layer").code == 2 and gc.isenabled()
    gc.disable()
    try:
        assert run_cli("rf", "lenet", "--json").code == 0 and not gc.isenabled()
    finally:
        gc.enable()
