"""The main job's claim holds for every seed and thread count (issue 16).

`cnnkit train recipes/lenet.yaml` is documented (docs/reference/train.md, the one place the
number lives) to reach a test accuracy on the digits at every ``train.seed`` 0-4 with one and
with two intra-op threads; these ten runs train exactly that command, in-process, and check the
claim and, on the kind of machine the docs' table was measured on, every figure in that table.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
from pathlib import Path

import pytest
import torch

from tests.clitools import run_cli

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "lenet.yaml"
DOC = ROOT / "docs" / "reference" / "train.md"
SEEDS = (0, 1, 2, 3, 4)
THREADS = (1, 2)
ISSUE_FLOOR = 0.97  # issue 16: "documented to reach at least 97% test accuracy"

CLAIM = re.compile(
    r"reaches at least (\d+(?:\.\d+)?)% test accuracy at every `train\.seed` 0-4 with one and with "
    r"two intra-op threads"
)
TABLE = re.compile(r"<!-- lenet seeds and threads, measured on: (.+?) -->\n(.*?)\n\n", re.S)
ROW = re.compile(r"^\| (\d) \| (\d+\.\d\d)% \| (\d+\.\d\d)% \|$", re.M)


def claimed() -> float:
    """The documented floor, as a fraction: the one number the docs and the recipe promise."""
    found = CLAIM.findall(DOC.read_text(encoding="utf-8"))
    assert len(found) == 1, f"{DOC.name} must state the main job's claim once"
    return float(found[0]) / 100


def documented_table() -> tuple[str, dict[tuple[int, int], str]]:
    """The machine the docs' per-seed table was measured on, and its figures by (seed, threads)."""
    match = TABLE.search(DOC.read_text(encoding="utf-8"))
    assert match, f"{DOC.name} has no per-seed table for the main job"
    cells = {}
    for seed, one, two in ROW.findall(match.group(2)):
        cells[int(seed), 1], cells[int(seed), 2] = f"{one}%", f"{two}%"
    return match.group(1), cells


def this_machine() -> str:
    """What the trained figures depend on besides seed and threads (as docs/run_guide.py says)."""
    vendor = "unknown-vendor"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.machine()} {vendor} {capability} torch {torch.__version__}"


def train(seed: int, threads: int, out: Path) -> dict:
    """`cnnkit train recipes/lenet.yaml --set train.seed=SEED` with THREADS intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r = run_cli(
            "train", str(RECIPE), "--set", f"train.seed={seed}", "--out", str(out), "--json"
        )
    finally:
        torch.set_num_threads(before)
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("seed", SEEDS)
def test_the_main_job_reaches_its_claim(seed: int, threads: int, tmp_path: Path) -> None:
    document = train(seed, threads, tmp_path / "run")
    assert document["threads"] == threads  # the count the run measured, not the one asked for
    assert document["data"]["source"] == "digits" and document["params"] == 61706
    test = document["test"]
    right = sum(row[i] for i, row in enumerate(test["confusion"]))
    assert test["samples"] == 359 and test["accuracy"] == right / test["samples"]
    assert test["accuracy"] >= claimed() >= ISSUE_FLOOR
    machine, cells = documented_table()
    if machine == this_machine():
        assert f"{test['accuracy']:.2%}" == cells[seed, threads]


def test_the_claim_is_one_number_and_the_table_is_complete() -> None:
    claim = claimed()
    _, cells = documented_table()
    assert sorted(cells) == sorted((s, t) for s in SEEDS for t in THREADS)
    assert min(float(v.rstrip("%")) for v in cells.values()) / 100 >= claim
    comment = re.findall(r">= (\d+(?:\.\d+)?)% test accuracy", RECIPE.read_text(encoding="utf-8"))
    assert comment == [f"{claim * 100:g}"], "the recipe's comment must state the documented claim"
