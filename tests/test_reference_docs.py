"""The generated tables of docs/reference/ are current, and say what the code does.

``docs/reference/generate.py`` writes them from the code (the layer registry's ops rules; the
``train:``/``data:`` dataclasses and validators of ``cnnkit/train/config.py``); these tests
regenerate them in memory and compare with the committed pages, and check a few rows against
the code by other routes, so a generator that printed nothing, or the wrong thing, fails too.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from cnnkit.analysis.costs import ops_rules
from cnnkit.errors import RecipeError
from cnnkit.train import config

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "reference_generate", ROOT / "docs" / "reference" / "generate.py"
)
assert _spec is not None and _spec.loader is not None
generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate)

CONFIG = ROOT / "docs" / "reference" / "config.md"
OPS = ROOT / "docs" / "reference" / "ops.md"


@pytest.mark.parametrize("page", generate.PAGES, ids=lambda p: p.name)
def test_committed_page_equals_a_fresh_generation(page):
    assert page.read_text(encoding="utf-8") == generate.render(
        page.read_text(encoding="utf-8"), generate.fresh()
    ), f"{page.relative_to(ROOT)} is stale; regenerate: {generate.REGENERATE}"


def test_every_block_is_on_a_page_and_filled():
    text = CONFIG.read_text(encoding="utf-8") + OPS.read_text(encoding="utf-8")
    for name in generate.BLOCKS:
        start = text.index(f"<!-- generated: {name} (")
        end = text.index(f"<!-- end generated: {name} -->")
        assert text[start:end].count("\n| ") >= 3, name


def test_a_stale_page_is_rewritten_and_detected(tmp_path):
    page = tmp_path / "ops.md"
    page.write_text(
        "intro\n<!-- generated: ops (python docs/reference/generate.py) -->\n| old |\n"
        "<!-- end generated: ops -->\noutro\n",
        encoding="utf-8",
    )
    changed = generate.stale((page,))
    assert set(changed) == {page}
    new = changed[page]
    assert new.startswith("intro\n") and new.endswith("outro\n") and "| old |" not in new
    assert generate.render(new, generate.fresh()) == new


def test_ops_table_has_exactly_the_registry_rules():
    rows = [ln for ln in OPS.read_text(encoding="utf-8").splitlines() if ln.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == list(ops_rules())


def _row(key: str) -> list[str]:
    for line in CONFIG.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{key}` |"):
            return [c.strip() for c in line.strip("|").split(" | ")]
    raise AssertionError(f"{key} has no row in config.md")


@pytest.mark.parametrize(
    ("cls", "section"), [(config.TrainConfig, "train"), (config.DataConfig, "data")]
)
def test_every_config_key_has_a_row_with_its_default(cls, section):
    for f in fields(cls):
        key, default, accepts, meaning = _row(f"{section}.{f.name}")
        assert accepts and meaning, key
        if isinstance(f.default, bool):
            assert default == f"`{str(f.default).lower()}`", key
        elif isinstance(f.default, int | float | str):
            assert default == f"`{f.default}`", key


@pytest.mark.parametrize(
    ("key", "bad"),
    [("train.lr", "a"), ("train.optimizer", "rmsprop"), ("data.val", 1.5), ("data.classes", 1)],
)
def test_the_accepts_column_is_what_the_validator_says(key, bad):
    section, name = key.split(".")
    parse = config.parse_train if section == "train" else config.parse_data
    with pytest.raises(RecipeError) as err:
        parse({name: bad}, config.NoLocation())
    expected = err.value.message.split(", got ")[0].removeprefix("expected ")
    assert _row(key)[2].startswith(expected.replace("|", "\\|"))


def test_every_data_source_and_augmentation_is_documented():
    text = CONFIG.read_text(encoding="utf-8")
    for name in (*config.DATA_SOURCES, "torchvision:NAME"):
        assert f"| `{name}`" in text, name
    for kind in config.AUGMENTS:
        assert f"| `{kind}` |" in text, kind


def test_the_generator_imports_nothing_heavy_and_checks_from_the_command_line():
    code = (
        "import runpy, sys; sys.argv = ['generate.py', '--check']\n"
        "try:\n    runpy.run_path('docs/reference/generate.py', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('HEAVY', sorted(m for m in ('torch', 'numpy', 'pandas', 'fvcore') "
        "if m in sys.modules), 'CODE', code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert "HEAVY [] CODE 0" in done.stdout, done.stdout + done.stderr


COMMANDS = ROOT / "docs" / "reference" / "commands.md"  # written with the CLI's options
PAGES_WITH_LINKS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "docs" / "recipes.md",
    *sorted((ROOT / "docs" / "reference").glob("*.md")),
]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    heads = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES_WITH_LINKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_and_anchors_resolve(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    missing = []
    for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]*))?\)", text):
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            missing.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            missing.append(f"{target}#{anchor}")
    # commands.md comes with the CLI's option declarations; until it exists, links may wait
    assert [m for m in missing if Path(m).name != COMMANDS.name or COMMANDS.exists()] == []
