"""Malformed recipes: mutations of the built-in recipes, on their parsed tree and on their text.

Tree mutations delete, duplicate, rename and retype keys and put huge, negative, NaN or
deeply nested values anywhere; text mutations add what a tree cannot hold: YAML alias bombs
and recursive aliases, tags such as ``!!python/object/apply``, control characters, BOMs,
tabs, binary junk, truncation, several documents, other encodings, megabytes of comments.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Small recipes most of the time: a mutated DenseNet costs a second to analyse.
WEIGHTS = {
    "lenet": 6, "lenet1998": 4, "deepconv": 4, "textcnn": 3, "alexnet": 2, "vgg16": 2,
    "resnet18": 3, "googlenet": 1, "resnet50": 1, "densenet121": 1, "mobilenet_v2": 2,
}  # fmt: skip

TINY = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - maxpool: 2
    - flatten
    - {linear: 3, name: fc}
data:
  name: synthetic
  samples: 60
  classes: 3
train:
  epochs: 1
  batch_size: 20
  lr: 0.05
  device: cpu
"""

LOL = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
BOMB = "\n".join(
    [f"a0: &a0 {LOL}"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)
# Values a tree mutation puts in place of another.
ODD_VALUES: tuple[Any, ...] = (
    -1, 0, 1, 10**20, 10**30, -(2**63), 2**63, 1e20, 1e-30, float("nan"), float("inf"),
    float("-inf"), "", "x", "3x3", None, True, False, [], {}, [1, 2], {"a": 1}, "${1/0}",
    "$nope", "${", "${out*1e9}", 1.5, "\u202e", "relu", {"conv": 10**10}, [[[[[]]]]],
    {"repeat": {"times": 10**9, "layers": ["relu"]}}, "1" * 70, "${'a' * 10**9}",
    "${(1).__class__}", "$in_channels", "${in_channels * 10**9}", "${make_divisible(1e300, 1)}",
    "${'identity' if True else 'none'}", "none", "${1 < 2 < 3}",
)  # fmt: skip
TAGS = (
    "!!python/object/apply:os.system ['touch pwned']", "!!python/name:os.system",
    "!!python/object/new:os.system [touch pwned]", "!!binary aGVsbG8=", "!!set {a, b}",
    "!!omap [{a: 1}]", "!!timestamp 2001-12-14", "!!float nan", "!custom 3", "!!int 0x1F",
    "!!str 3", "!!merge x", "!!null", "!<tag:yaml.org,2002:python/tuple> [1]",
)  # fmt: skip
SCALARS = (
    "1" + "0" * 400, "1e400", "0x" + "f" * 100, "0o777", "0b1010", "1_000_000", "190:20:30",
    ".inf", "-.inf", ".nan", "~", "yes", "No", "'unterminated", '"\\x"', "@x", "`x", "%x",
)  # fmt: skip


def base(rng: random.Random) -> tuple[str, str]:
    """(name, text) of a built-in recipe (or the tiny trainable one), small ones likelier."""
    names = [*WEIGHTS, "tiny"]
    name = rng.choices(names, [*WEIGHTS.values(), 6])[0]
    if name == "tiny":
        return name, TINY
    return name, (ROOT / "recipes" / f"{name}.yaml").read_text(encoding="utf-8")


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every key path in a parsed recipe (the root included)."""
    found = [path]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        found += _paths(child, (*path, key))
    return found


def _parent(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


def _odd(rng: random.Random) -> Any:
    if rng.random() < 0.15:
        value: Any = rng.choice(ODD_VALUES)
        for _ in range(rng.choice((10, 63, 70))):  # near, at and past the nesting limit
            value = [value]
        return value
    return rng.choice(ODD_VALUES)


def mutate_tree(rng: random.Random, tree: Any) -> str:
    """Apply one structural mutation to ``tree`` in place; say which."""
    paths = _paths(tree)[1:] or [()]
    depth = rng.choice(sorted({len(p) for p in paths}))  # shallow keys as likely as deep ones
    path = rng.choice([p for p in paths if len(p) == depth])
    if not path:
        return "root kept"
    parent, key = _parent(tree, path), path[-1]
    op = rng.choice(("delete", "retype", "retype", "duplicate", "rename", "wrap", "swap"))
    if op == "delete":
        del parent[key]
    elif op == "retype":
        parent[key] = _odd(rng)
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    elif op == "duplicate":
        parent[f"{key}_copy" if rng.random() < 0.5 else str(key).upper()] = parent[key]
    elif op == "rename" and isinstance(parent, dict):
        parent[str(key)[:-1] or "?"] = parent.pop(key)
    elif op == "wrap":
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"layers": parent[key]}
    elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
        other = rng.randrange(len(parent))
        parent[key], parent[other] = parent[other], parent[key]
    return f"{op} {'.'.join(map(str, path))}"


def tree_mutant(rng: random.Random, text: str) -> tuple[str, str]:
    """1-3 structural mutations of the recipe's tree, dumped back to YAML."""
    tree = yaml.safe_load(text)
    notes = [mutate_tree(rng, tree) for _ in range(rng.randint(1, 3))]
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), "; ".join(notes)


def _insert(rng: random.Random, text: str, piece: str) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + piece + text[at:]


def _value_at_random_key(rng: random.Random, text: str, piece: str) -> str:
    """Replace the value after a random ``key: `` with ``piece``."""
    lines = text.splitlines()
    keyed = [
        i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")
    ]
    if not keyed:
        return text + "\nx: " + piece
    i = rng.choice(keyed)
    head = lines[i].split(": ", 1)[0]
    lines[i] = f"{head}: {piece}"
    return "\n".join(lines) + "\n"


def _text_ops() -> dict[str, Any]:
    return {
        "truncate": lambda r, t: t[: r.randrange(len(t))],
        "bomb": lambda r, t: t + "\n" + BOMB + "\n",
        "bomb in model": lambda r, t: BOMB + "\n" + t.replace("layers:", "layers: *a8", 1),
        "recursive alias": lambda r, t: _value_at_random_key(r, t, "&r [*r, *r]"),
        "undefined alias": lambda r, t: _value_at_random_key(r, t, "*nowhere"),
        "merge key": lambda r, t: t + "\nbase: &b {k: 3}\nother: {<<: *b, <<: *b}\n",
        "tag": lambda r, t: _value_at_random_key(r, t, r.choice(TAGS)),
        "scalar": lambda r, t: _value_at_random_key(r, t, r.choice(SCALARS)),
        "control": lambda r, t: _insert(r, t, r.choice("\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85")),
        "bom": lambda r, t: ("\ufeff" + t) if r.random() < 0.5 else _insert(r, t, "\ufeff"),
        "tabs": lambda r, t: t.replace("  ", "\t", r.randint(1, 5)),
        "flip char": lambda r, t: _insert(r, t, r.choice(":-[]{}&*!|>'\"%@`,?#")),
        "drop line": lambda r, t: _drop_line(r, t),
        "dup line": lambda r, t: _dup_line(r, t),
        "documents": lambda r, t: t + "\n---\n" + t,
        "empty": lambda r, t: r.choice(("", "\n", "# only a comment\n", "~\n", "42\n", "[1]\n")),
        "long key": lambda r, t: t + "\n" + "k" * 300_000 + ": 1\n",
        "comments 2MB": lambda r, t: ("#" + "c" * 99 + "\n") * 21_000 + t,
        "deep": lambda r, t: t + "\nx: " + "[" * r.choice((60, 64, 65, 1000)) + "]" * 1000 + "\n",
        "deep maps": lambda r, t: t + "\nx: " + "{a: " * r.choice((63, 100)) + "1" + "}" * 100,
        "huge int": lambda r, t: _value_at_random_key(r, t, "9" * r.choice((65, 4301, 100_000))),
    }


TEXT_OPS = _text_ops()


def _drop_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    del lines[rng.randrange(len(lines))]
    return "".join(lines)


def _dup_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return "".join(lines)


def text_mutant(rng: random.Random, text: str) -> tuple[bytes, str]:
    """One text mutation, encoded as UTF-8 (or sometimes UTF-16, Latin-1 or with junk bytes)."""
    op = rng.choice(list(TEXT_OPS))
    out = TEXT_OPS[op](rng, text)
    encoding = rng.choices(("utf-8", "utf-16", "latin-1", "junk"), (20, 1, 1, 2))[0]
    if encoding == "junk":
        data = out.encode("utf-8", "surrogatepass")
        at = rng.randrange(len(data) + 1)
        return data[:at] + bytes(rng.randrange(256) for _ in range(8)) + data[at:], op + ", junk"
    return out.encode(encoding, "replace"), op + ("" if encoding == "utf-8" else f", {encoding}")


def mutant(rng: random.Random) -> tuple[str, bytes, str]:
    """(base name, recipe bytes, what was done) for one malformed recipe."""
    name, text = base(rng)
    if rng.random() < 0.5:
        tree_text, note = tree_mutant(rng, text)
        return name, tree_text.encode("utf-8"), note
    data, note = text_mutant(rng, text)
    return name, data, note
