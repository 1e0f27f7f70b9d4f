"""Hostile or mistyped recipes are refused in milliseconds: one line naming the file, line or
key, exit 2. Each case here hung, took gigabytes or raised an internal error before."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnkit.recipe import limits
from tests.clitools import run_cli

HEAD = "input: [1, 8, 8]\nmodel:\n"
LOL = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'


def _bomb() -> str:
    """The classic billion-laughs: nine levels of nine aliases, 9**9 values, ~600 bytes."""
    lines = [f"a0: &a0 {LOL}"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


BLOCK = (
    "  blocks:\n    big:\n      args: {k: 3}\n      layers:\n"
    "        - {conv: {out: 4, k: '${EXPR}'}}\n"
    "  layers:\n    - big: {k: 3}\n"
)

# name: (recipe text, what the one error line must contain)
CASES = {
    "alias bomb": (HEAD + "  layers: [relu]\n" + _bomb(), "x.yaml:9: YAML error: expands to more"),
    "nesting 1000": (HEAD + "  layers: " + "[" * 1000 + "]" * 1000 + "\n", "x.yaml:3: YAML"),
    "control character": (HEAD + "  layers: [relu]\x07\n", "x.yaml:3: YAML error: unacceptable"),
    "5000-digit integer": (HEAD + "  layers: [{conv: " + "9" * 5000 + "}]\n", "x.yaml:3: YAML"),
    "repeat 1e9": (
        HEAD + "  layers:\n    - repeat: {times: 1000000000, layers: [relu]}\n",
        "x.yaml:4: model.layers[0].repeat.times: 1000000000 copies",
    ),
    "depth 1e9": (HEAD + "  depth: 1e9\n  layers: [relu]\n", "x.yaml:3: model.depth: expected"),
    "depth times repeat": (
        HEAD + "  depth: 1000\n  layers:\n    - repeat: {times: 1000, layers: [relu]}\n",
        "model.layers[0].repeat.times: 1000 copies (x model.depth 1000)",
    ),
    "width 1e9": (HEAD + "  width: 1e9\n  layers: [relu]\n", "x.yaml:3: model.width: expected"),
    "names width 300M": (
        HEAD + "  layers:\n    - repeat: {times: 2, names: '{n:>300000000}', layers: [relu]}\n",
        "model.layers[0].repeat.names: a width in",
    ),
    "nested repeats past the layer limit": (
        HEAD + "  layers:\n    - repeat:\n        times: 1000\n        layers:\n"
        "          - repeat: {times: 1000, layers: [relu]}\n",
        "model.layers[0].repeat.layers[0].repeat.times: 1000 copies (x model.depth 1 x 1,000 "
        "enclosing copies) exceed the limit of 100,000 layers",
    ),
    "dense block with quadratic inputs": (
        HEAD + "  layers:\n    - dense: {times: 30000, layers: [relu]}\n",
        "model.layers[0].dense: more than 1,000,000 layer inputs in all",
    ),
    "power tower": (HEAD + BLOCK.replace("EXPR", "((9**64)**64)**64"), "is too large"),
    "long expression": (HEAD + BLOCK.replace("EXPR", "1" + "+1" * 200), "at most 200 characters"),
}


@pytest.mark.parametrize("name", CASES)
def test_bounded_recipe_is_one_line_exit_2(name: str, tmp_path: Path) -> None:
    text, expected = CASES[name]
    recipe = tmp_path / "x.yaml"
    recipe.write_text(text, encoding="utf-8")
    result = run_cli("params", str(recipe))
    assert result.code == 2, result.err
    assert result.err.count("\n") == 1, result.err
    assert str(recipe) in result.err or "--set" in result.err
    assert expected in result.err


def test_alias_bomb_through_set_is_refused() -> None:
    value = "{" + ", ".join(_bomb().strip().splitlines()) + "}"
    result = run_cli("params", "lenet", "--set", f"model.extra={value}")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "--set model.extra=" in result.err and "expands to more than" in result.err


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    recipe = tmp_path / "x.yaml"
    recipe.write_text(HEAD + "  layers: [relu]\n" + "#" * (limits.MAX_FILE_BYTES + 1) + "\n")
    result = run_cli("params", str(recipe))
    assert result.code == 2
    assert result.err.count("\n") == 1 and str(recipe) in result.err
    assert "larger than" in result.err


def test_limits_leave_real_networks_alone() -> None:
    """The largest built-in network, and depth/width well past any published scaling, load."""
    result = run_cli("params", "resnet50", "--set", "model.depth=3", "--json")
    assert result.code == 0, result.err
