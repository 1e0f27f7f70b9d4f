"""Regenerate the tables of ``docs/reference/`` that are facts of the code, not prose.

A generated table sits between two markers in a hand-written page::

    <!-- generated: NAME (python docs/reference/generate.py) -->
    ...
    <!-- end generated: NAME -->

and this script rewrites what lies between them; the rest of the page is left alone. The
tables come from the code itself, so they cannot drift from it:

- ``ops`` (ops.md): every layer kind's ops rule, ``cnnkit.analysis.costs.ops_rules()``.
- ``train-keys``, ``data-keys`` (config.md): every field of ``TrainConfig``/``DataConfig`` in
  ``cnnkit/train/config.py`` with its default, the values its validator accepts (the
  validator's own "expected ..." message, got by feeding it a value nothing accepts) and its
  meaning (the comment on the field's line, which the code keeps for its readers).
- ``augmentations`` (config.md): every ``data.augment`` kind with its arguments' defaults and
  accepted values, read the same way.

    python docs/reference/generate.py           # rewrite the generated tables in place
    python docs/reference/generate.py --check   # exit 1 (and name the pages) if any is stale

Only pure cnnkit modules are imported (no torch, numpy or pandas), so this takes a moment.
``tests/test_reference_docs.py`` imports this module and fails when a committed page differs
from a fresh generation.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import json
import re
import sys
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from cnnkit.analysis.costs import ops_rules  # noqa: E402
from cnnkit.errors import CnnkitError  # noqa: E402
from cnnkit.train import config  # noqa: E402

REGENERATE = "python docs/reference/generate.py"
_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) \(.*?\) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end generated: (?P=name) -->)",
    re.S,
)


class _Unacceptable:
    """A value no validator accepts, so each answers with what it expects."""

    def __repr__(self) -> str:
        return "<?>"


_BAD = _Unacceptable()
_HUGE = 1e300  # numbers: the message then also states the upper limit


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def yaml_value(value: Any) -> str:
    """A default as it is written in a recipe."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _expected(message: str) -> str:
    """``expected X, got <?>`` -> ``X``; any other message is returned whole."""
    text = re.sub(r", got (<\?>|1e\+300)$", "", message)
    return text.removeprefix("expected ")


def accepts(probe: Callable[[Any], None]) -> str:
    """What a validator accepts, in its own words; ``probe(value)`` validates one value."""
    said: list[str] = []
    for value in (_BAD, _HUGE):
        try:
            probe(value)
        except CnnkitError as err:
            said.append(_expected(err.message))
    if not said:
        raise ValueError("a validator accepted a value nothing should accept")
    if said[0].startswith("unknown key"):
        raise ValueError(said[0])
    text = said[1] if len(said) > 1 and said[1].startswith(said[0]) else said[0]
    try:
        probe(None)
    except CnnkitError:
        return text
    return f"{text}, or null"


def field_comments(cls: type) -> dict[str, str]:
    """The comment on each field's line of a dataclass: its documentation for readers."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    (body,) = ast.parse(source).body
    assert isinstance(body, ast.ClassDef)
    found = {}
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            end = node.end_lineno or node.lineno
            if end not in comments:
                raise ValueError(
                    f"{cls.__module__}.{cls.__name__}.{node.target.id} has no comment on its "
                    "line; write what the key means there"
                )
            found[node.target.id] = comments[end]
    return found


def key_table(cls: type, parse: Callable[[Any, Any], Any], section: str) -> str:
    """key | default | accepts | meaning, one row per field of a config dataclass."""
    meaning = field_comments(cls)
    rows = ["| key | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]

        def probe(value: Any, key: str = f.name) -> None:
            parse({key: value}, config.NoLocation())

        rows.append(
            f"| `{section}.{f.name}` | `{cell(yaml_value(default))}` | {cell(accepts(probe))} "
            f"| {cell(meaning[f.name])} |"
        )
    return "\n".join(rows)


def augment_table() -> str:
    """kind | argument | default | accepts, from what ``parse_data`` does with each kind."""
    rows = ["| kind | argument | default | accepts |", "| --- | --- | --- | --- |"]
    for kind in config.AUGMENTS:
        (augment,) = config.parse_data({"augment": [kind]}, config.NoLocation()).augment
        if not augment.args:
            rows.append(f"| `{kind}` | — | — | no arguments |")
        for arg, default in augment.args.items():

            def probe(value: Any, kind: str = kind, arg: str = arg) -> None:
                config.parse_data({"augment": [{kind: {arg: value}}]}, config.NoLocation())

            rows.append(
                f"| `{kind}` | `{arg}` | `{cell(yaml_value(default))}` | {cell(accepts(probe))} |"
            )
    return "\n".join(rows)


def ops_table() -> str:
    """kind | ops rule, in the registry's order."""
    rows = ["| kind | ops rule |", "| --- | --- |"]
    rows += [f"| `{kind}` | {cell(rule)} |" for kind, rule in ops_rules().items()]
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "ops": ops_table,
    "train-keys": lambda: key_table(config.TrainConfig, config.parse_train, "train"),
    "data-keys": lambda: key_table(config.DataConfig, config.parse_data, "data"),
    "augmentations": augment_table,
}
PAGES = (HERE / "ops.md", HERE / "config.md")


def render(text: str, blocks: dict[str, str]) -> str:
    """The page with every generated block replaced by its fresh text."""

    def fill(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in blocks:
            raise ValueError(f"unknown generated block {name!r}; known: {', '.join(blocks)}")
        return f"{m.group(1)}{blocks[name]}\n{m.group(4)}"

    return _BLOCK.sub(fill, text)


def fresh() -> dict[str, str]:
    """Every generated block, computed now."""
    return {name: make() for name, make in BLOCKS.items()}


def stale(pages: tuple[Path, ...] = PAGES) -> dict[Path, str]:
    """The pages whose generated blocks differ from a fresh generation, with their new text."""
    blocks = fresh()
    changed = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        new = render(text, blocks)
        if new != text:
            changed[page] = new
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    args = parser.parse_args(argv)
    changed = stale()
    for page, text in changed.items():
        name = page.relative_to(ROOT)
        if args.check:
            print(f"{name} is stale; regenerate: {REGENERATE}")
        else:
            page.write_text(text, encoding="utf-8")
            print(f"updated {name}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
