"""docs/recipes.md teaches every layer kind and every recipe feature with an executed example
(issue 13: networks are written from that page alone). The examples run are the ```yaml
blocks starting with ``input:`` (tests/test_recipe_v2.py loads and builds each one); this test
walks their items and asserts that each kind of cnnkit.layers.LAYERS, each structure, each
meta key and each language feature appears in at least one of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cnnkit.layers import LAYERS

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
STRUCTURES = ("sequence", "repeat", "residual", "parallel", "dense")
META = ("name", "id", "from", "init", "trainable", "splice", "if")

# Features that no executed example can show, with the reason.
EXCEPTIONS = {
    "model.torchvision": "needs torchvision, absent from the main venv the examples run in",
    "model.timm": "needs timm, absent from the main venv the examples run in",
}

FEATURES = {
    # model keys
    "model.layers",
    "model.blocks",
    "model.init",
    "model.seed",
    "model.depth",
    "model.width",
    "model.torchvision",
    "model.timm",
    # structure options
    "repeat.names",
    "repeat.times_0",
    "dense.names",
    "parallel.merge_concat",
    "parallel.merge_add",
    "parallel.branches_list",
    "residual.after",
    "residual.shortcut_name",
    "residual.shortcut_auto",
    "residual.shortcut_identity",
    "residual.shortcut_projection",
    "residual.shortcut_none",
    "residual.shortcut_list",
    "residual.shortcut_expression",
    # blocks and expressions
    "block.short_form",
    "block.required_arg",
    "block.arg_default_expression",
    "expr.in_channels",
    "expr.conditional",
    "expr.make_divisible",
    "expr.kind_chosen",
    "expr.name_template",
    # kind options that change a network's structure
    "linear.over_channels",
    "layernorm.over_last",
    "upsample.from_ref",
    "from.list",
    "from.input",
}


def doc_examples() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(input:.*?)```", text, re.S)]


def canonical() -> dict[str, str]:
    """Every kind name and alias -> the kind's name."""
    names = {name: name for name in LAYERS}
    for name, kind in LAYERS.items():
        names.update({alias: name for alias in kind.aliases})
    return names


class Walk:
    """The kinds, structures, meta keys and features seen in the examples' items."""

    def __init__(self) -> None:
        self.kinds = canonical()
        self.seen: set[str] = set()
        self.blocks: set[str] = set()

    def text(self, value: object) -> None:
        if isinstance(value, str) and "${" in value:
            self.seen.update(
                label
                for label, word in (
                    ("expr.in_channels", "in_channels"),
                    ("expr.conditional", " else "),
                    ("expr.make_divisible", "make_divisible("),
                )
                if word in value
            )
        if isinstance(value, str) and "$in_channels" in value:
            self.seen.add("expr.in_channels")
        if isinstance(value, dict):
            for inner in value.values():
                self.text(inner)
        if isinstance(value, list):
            for inner in value:
                self.text(inner)

    def model(self, model: dict[str, Any]) -> None:
        self.seen.update(f"model.{key}" for key in model)
        for block in (model.get("blocks") or {}).values():
            for default in (block.get("args") or {}).values():
                if default is None:
                    self.seen.add("block.required_arg")
                if isinstance(default, str) and "$" in default:
                    self.seen.add("block.arg_default_expression")
        self.blocks.update(model.get("blocks") or {})
        for block in (model.get("blocks") or {}).values():
            self.body(block.get("layers"))
        self.body(model.get("layers"))
        self.text(model)

    def body(self, body: object) -> None:
        for item in body if isinstance(body, list) else [body]:
            self.item(item)

    def item(self, item: object) -> None:
        if isinstance(item, str):
            if item.startswith("$"):
                self.seen.add("expr.kind_chosen")
            self.head(item, None)
            return
        if not isinstance(item, dict):
            return
        self.seen.update(f"meta.{key}" for key in item if key in META)
        self.meta(item)
        for head, args in item.items():
            if head not in META:
                self.head(head, args)

    def meta(self, item: dict[str, Any]) -> None:
        source = item.get("from")
        if isinstance(source, list):
            self.seen.add("from.list")
            heads = [key for key in item if key not in META]
            if heads and self.kinds.get(heads[0]) == "upsample":
                self.seen.add("upsample.from_ref")
        if source == "input" or (isinstance(source, list) and "input" in source):
            self.seen.add("from.input")
        for key in ("name", "id"):
            if isinstance(item.get(key), str) and "$" in item[key]:
                self.seen.add("expr.name_template")

    def head(self, head: str, args: object) -> None:
        if head in self.kinds:
            self.kind(self.kinds[head], args)
        elif head in STRUCTURES:
            self.seen.add(f"structure.{head}")
            getattr(self, head)(args)
        elif head in self.blocks:
            self.seen.add("block.call")
            if not isinstance(args, dict):
                self.seen.add("block.short_form")

    def kind(self, kind: str, args: object) -> None:
        self.seen.add(f"kind.{kind}")
        if isinstance(args, dict):
            over = args.get("over")
            if kind == "linear" and over == "channels":
                self.seen.add("linear.over_channels")
            if kind == "layernorm" and over == "last":
                self.seen.add("layernorm.over_last")
        if kind == "layernorm" and args == "last":
            self.seen.add("layernorm.over_last")

    def sequence(self, args: object) -> None:
        self.body(args)

    def repeat(self, args: dict[str, Any]) -> None:
        if "names" in args:
            self.seen.add("repeat.names")
        if args.get("times") == 0:
            self.seen.add("repeat.times_0")
        self.body(args.get("layers"))

    def dense(self, args: dict[str, Any]) -> None:
        if "names" in args:
            self.seen.add("dense.names")
        self.body(args.get("layers"))

    def parallel(self, args: dict[str, Any]) -> None:
        self.seen.add(f"parallel.merge_{args.get('merge', 'concat')}")
        branches = args.get("branches")
        if isinstance(branches, list):
            self.seen.add("parallel.branches_list")
        for branch in branches.values() if isinstance(branches, dict) else branches:
            self.body(branch)

    def residual(self, args: dict[str, Any]) -> None:
        self.body(args.get("layers"))
        shortcut = args.get("shortcut", "auto")
        if isinstance(shortcut, list):
            self.seen.add("residual.shortcut_list")
            self.body(shortcut)
        elif isinstance(shortcut, str) and "${" in shortcut:
            self.seen.add("residual.shortcut_expression")
            self.seen.update(
                f"residual.shortcut_{mode}"
                for mode in ("identity", "none", "projection", "auto")
                if f"'{mode}'" in shortcut
            )
        else:
            self.seen.add(f"residual.shortcut_{shortcut}")
        if "shortcut_name" in args:
            self.seen.add("residual.shortcut_name")
        if "after" in args:
            self.seen.add("residual.after")
            self.body(args["after"])


def seen() -> set[str]:
    walk = Walk()
    for example in doc_examples():
        walk.model(example["model"])
    return walk.seen


def test_every_layer_kind_has_an_executed_example():
    missing = sorted(kind for kind in LAYERS if f"kind.{kind}" not in seen())
    assert missing == []


def test_every_structure_and_meta_key_has_an_executed_example():
    wanted = {f"structure.{s}" for s in STRUCTURES} | {f"meta.{m}" for m in META}
    assert sorted(wanted - seen()) == []


def test_every_feature_has_an_executed_example():
    missing = FEATURES - seen() - set(EXCEPTIONS)
    assert sorted(missing) == []


def test_the_exceptions_are_features_no_example_shows():
    assert set(EXCEPTIONS) <= FEATURES
    assert not set(EXCEPTIONS) & seen()


def test_the_walk_sees_what_it_is_shown():
    """The walker itself: an example with a conv, a residual and a block call is seen."""
    walk = Walk()
    walk.model(
        {
            "blocks": {"b": {"args": {"out": None}, "layers": [{"conv": "$out"}]}},
            "layers": [{"residual": {"layers": ["relu"], "shortcut": "none"}}, {"b": 4}],
        }
    )
    assert {"kind.conv", "kind.relu", "residual.shortcut_none", "block.short_form"} <= walk.seen
    assert "kind.bn" not in walk.seen
