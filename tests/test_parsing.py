"""Parsers of the small textual forms: sizes, budgets, layer lists."""

from __future__ import annotations

import pytest

from cnnkit.errors import InputError
from cnnkit.parsing import (
    parse_bytes,
    parse_count,
    parse_ints,
    parse_layer_list,
    parse_padding,
)


def test_ints_and_padding():
    assert parse_ints("--input", "3x224x224") == (3, 224, 224)
    assert parse_ints("--input", "3, 5") == (3, 5)
    assert parse_padding("--padding", "wide") == "full"
    assert parse_padding("--padding", "1x2") == (1, 2)
    with pytest.raises(InputError, match="--input: expected a positive integer, got 0"):
        parse_ints("--input", "0x3")


@pytest.mark.parametrize(
    ("text", "value"),
    [("5e6", 5e6), ("5M", 5e6), ("1.2G", 1.2e9), ("61706", 61706), ("3k", 3000)],
)
def test_counts(text, value):
    assert parse_count("--max-params", text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [("512MiB", 512 * 2**20), ("1.5GB", 1.5e9), ("2G", 2e9), ("100", 100.0)],
)
def test_bytes(text, value):
    assert parse_bytes("--max-memory", text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "M", "5X", "five", "1.2.3"])
def test_bad_counts_name_the_option(text):
    with pytest.raises(InputError, match="--max-macs"):
        parse_count("--max-macs", text)


def test_layer_list():
    layers = parse_layer_list("--layers", "conv k=11 s=4; maxpool k=3 s=2;conv k=3x5 p=1;")
    assert layers == [
        ("conv", {"k": "11", "s": "4"}),
        ("maxpool", {"k": "3", "s": "2"}),
        ("conv", {"k": "3x5", "p": "1"}),
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("conv k=3;; relu", "item 2 is empty"),
        ("k=3", "must start with a kind"),
        ("conv k", "expected key=value"),
        ("conv k=3 k=5", "k given twice"),
        ("  ", "no layers"),
    ],
)
def test_bad_layer_lists(text, needle):
    with pytest.raises(InputError, match=needle):
        parse_layer_list("--layers", text)


# -- --input on a recipe: H means H x H (every spatial axis), for every command that takes it ---

SMALL = "input: [3, 32, 32]\nmodel:\n  layers:\n    - {conv: {out: 8, k: 3}, name: c}\n"
SMALL += "    - {maxpool: 2, name: p}\n"


def _torch_output(size: tuple[int, ...]) -> list[int]:
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.MaxPool2d(2))
    return list(model(torch.zeros(1, *size)).shape[1:])


@pytest.mark.parametrize("text", ["20", "20x20", "3x20x20"])
@pytest.mark.parametrize("command", ["rf", "params"])
def test_input_h_means_h_by_h_for_a_2d_recipe(tmp_path, command, text):
    import json

    from tests.clitools import run_cli

    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    r = run_cli(command, str(path), "--input", text, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["input"] == [3, 20, 20]
    output = doc["layers"][-1]["output"] if command == "rf" else doc["output"]
    assert output == _torch_output((3, 20, 20))


def test_parse_recipe_input_forms_and_errors():
    from cnnkit.parsing import parse_recipe_input

    assert parse_recipe_input("--input", "227", (3, 224, 224)) == (3, 227, 227)
    assert parse_recipe_input("--input", "7", (1, 4, 4, 4)) == (1, 7, 7, 7)
    assert parse_recipe_input("--input", "100", (2, 50)) == (2, 100)  # C, L: the length
    assert parse_recipe_input("--input", "80", (56,)) == (80,)  # token ids: no channels
    with pytest.raises(InputError, match="does not fit the recipe's input 3x224x224"):
        parse_recipe_input("--input", "1x2x3x4", (3, 224, 224))
