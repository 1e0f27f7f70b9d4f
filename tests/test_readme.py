"""The README: it opens with the two commands CI runs, stays a page, and its tour is real.

The tour's commands run through ``docs/run_guide.py``, the engine of the tested guide, so the
README and the guide mean the same by a console block (``…`` masks timings, a ``...`` line
stands for lines left out). Regenerate its outputs with
``python docs/run_guide.py --guide README.md --update``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_guide import run_guide

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
REGENERATE = "python docs/run_guide.py --guide README.md --update"


def _first_block() -> list[str]:
    m = re.search(r"^```bash\n(.*?)^```$", TEXT, re.M | re.S)
    assert m is not None, "the README opens with a bash block of its two commands"
    assert TEXT[: m.start()].count("```") == 0, "no other block comes before the two commands"
    return [ln for ln in m.group(1).splitlines() if ln and not ln.startswith("#")]


def test_the_readme_starts_with_the_two_commands():
    main_job, tests = _first_block()
    assert main_job.startswith("python3 -m venv .venv && ")
    assert main_job.endswith(" && cnnkit train recipes/lenet.yaml")
    assert tests.startswith("python3 -m venv .venv && ") and tests.endswith("python -m pytest -q")


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = _first_block()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci, "the README's test command and .ci/run's first stage must be identical"


def test_the_readme_fits_on_a_few_screens():
    assert len(TEXT.splitlines()) <= 200, "the manual belongs in docs/reference/"


def test_every_command_is_in_the_tour():
    guide = run_guide.parse(TEXT)
    ran = " ".join(c.text for c in guide.commands)
    for command in ("conv", "rf", "params", "recipes", "train", "eval", "profile"):
        assert f"cnnkit {command} " in ran + " ", command


def test_local_links_resolve():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", TEXT):
        assert (ROOT / target).exists(), target


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    guide = run_guide.parse(TEXT)
    return run_guide.run_guide(guide, tmp_path_factory.mktemp("readme"))


def test_the_tour_prints_what_the_readme_shows(tour):
    failures = [o.report().replace("guide.md:", "README.md:", 1) for o in tour if not o.ok]
    assert not failures, "\n\n".join(failures) + f"\n\nregenerate: {REGENERATE}"
