"""The libyaml fast path reads every recipe exactly as the pure-Python loader does.

The oracle is PyYAML's own pure-Python ``SafeLoader`` path (``fast=False``): for shipped
recipes, hand-written edge cases, the fuzz family's hostile texts and random mutants, both
paths must give the same data and line map, or the same one-line error with the same
``file:line``; and without libyaml the loader must fall back to the pure path.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnnkit.errors import RecipeError
from cnnkit.recipe import source
from tests.fuzz import recipes as fuzz

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))
needs_libyaml = pytest.mark.skipif(source._c_parser() is None, reason="PyYAML without libyaml")

EDGE = {
    "floats": "lr: 1e-4\nb: 1E5\nc: -1e-3\nd: 1.0e5\ne: 1_000.5e2\nf: .5e1\n",
    "types": "a: yes\nb: ~\nc: 0x1f\nd: 0o17\ne: 2001-12-14\nf: '1e-4'\ng: .inf\nh: 1:30\n",
    "merge": "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n",
    "dup": "a: 1\nb: 2\na: 3\n",
    "recursive": "a: &x [1, *x]\n",
    "complex_key": "? [1, 2]\n: v\n",
    "tag": "a: !!python/object/apply:os.system ['true']\n",
    "unknown_tag": "a: !foo 1\n",
    "tab": "a:\n\tb: 1\n",
    "bad_indent": "a:\n  b: 1\n c: 2\n",
    "unclosed": "a: [1, 2\nb: 3\n",
    "two_docs": "a: 1\n---\nb: 2\n",
    "deep_flow": "a: " + "[" * 70 + "]" * 70 + "\n",
    "deep_flow_libyaml": "a: " + "[" * 1200 + "]" * 1200 + "\n",
    "deep_block": "".join(" " * i + f"k{i}:\n" for i in range(70)) + " " * 70 + "v: 1\n",
    "big_int": "a: " + "9" * 80 + "\n",
    "control": "a: b\x07c\n",
    "nul": "a: \x00\n",
    "bom": "\ufeffa: 1\n",
    "empty": "",
    "comment_only": "# nothing\n",
    "lol": fuzz.BOMB,
    "tiny": fuzz.TINY,
    "anchor_alias": "x: &a 3\ny: *a\nz: *missing\n",
    "scalar_doc": "42\n",
    "quoted": "a: \"\\u00e9\\x41\"\nb: 'it''s'\nc: |\n  two\n  lines\nd: >-\n  folded\n  text\n",
}


def outcome(text: str, fast: bool, strict: bool = False) -> tuple[str, Any]:
    """("ok", (data, lines)) or ("error", the one-line message with its file:line)."""
    read = source._read_yaml if strict else source.read_yaml
    try:
        data, where = read(text, "r.yaml", fast)
    except RecipeError as err:
        return "error", str(err)
    return "ok", (repr(data), where.lines)


def cases() -> list[tuple[str, str]]:
    found = [(f"shipped:{p.stem}", p.read_text(encoding="utf-8")) for p in SHIPPED]
    found += [(f"edge:{k}", v) for k, v in EDGE.items()]
    rng = random.Random(13)
    for i in range(150):
        _, data, note = fuzz.mutant(rng)
        found.append((f"fuzz{i}:{note}", data.decode("utf-8", "replace")))
    return found


CASES = cases()


@needs_libyaml
@pytest.mark.parametrize(("label", "text"), CASES, ids=[c[0] for c in CASES])
def test_both_loaders_read_the_same_data_lines_and_errors(label: str, text: str) -> None:
    pure = outcome(text, fast=False)
    assert outcome(text, fast=True) == pure
    # The fast path on its own must not accept a text the pure one refuses, nor read it
    # differently; where it refuses, read_yaml's fallback gives the pure error above.
    strict = outcome(text, fast=True, strict=True)
    if strict[0] == "ok":
        assert strict == pure


@needs_libyaml
@pytest.mark.parametrize(
    "value", ["3", "1e-4", "[1, 2]", "{a: 1}", "[", "!!python/name:os.system", "a: b: c", ""]
)
def test_set_values_read_the_same_either_way(value: str) -> None:
    def read(fast: bool) -> Any:
        try:
            return "ok", source.load_value(value, fast)
        except yaml.YAMLError as err:
            return "error", source.describe(err)

    assert read(True) == read(False)


@needs_libyaml
def test_the_fast_path_really_uses_libyaml() -> None:
    assert issubclass(source.loader(True), yaml._yaml.CParser)
    assert not issubclass(source.loader(False), yaml._yaml.CParser)


def test_without_libyaml_the_pure_loader_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    source.loader.cache_clear()
    try:
        assert source._c_parser() is None
        assert issubclass(source.loader(), yaml.SafeLoader)
        data, where = source.read_yaml("lr: 1e-4\nb: [1, 2]\n", "r.yaml")
        assert data == {"lr": 1e-4, "b": [1, 2]} and where.lines[("b",)] == 2
        with pytest.raises(RecipeError, match=r"^r\.yaml:3: .*duplicate key 'a'"):
            source.read_yaml("a: 1\nb: 2\na: 3\n", "r.yaml")
    finally:
        source.loader.cache_clear()
