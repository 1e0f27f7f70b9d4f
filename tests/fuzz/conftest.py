"""Fuzz-suite settings from the environment, the fork-server worker and the trained inputs.

CI mode (the default) runs a fixed seed and a fixed number of cases per family, about a
minute on two cores; ``CNNKIT_FUZZ=long`` runs twenty times more, ``CNNKIT_FUZZ_CASES=N``
runs N per family, ``CNNKIT_FUZZ_SEED=S`` changes the seed and ``CNNKIT_FUZZ_ONLY=ID,..``
(ids such as ``recipe:17``, as failure reports print them) replays single cases.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fuzz.cases import FAMILIES, Fixtures
from tests.fuzz.recipes import BOMB, TINY
from tests.fuzz.runner import Case, Worker, run

# checkpoint and data cases go round their kinds of damage: 39 and 53 cover each once
CI_CASES = {"cli": 60, "recipe": 60, "checkpoint": 40, "data": 53}
LONG_FACTOR = 20
SPAWNED = {"ci": 3, "long": 40}  # cases also run as `python -m cnnkit` in a fresh interpreter


@dataclass(frozen=True)
class Settings:
    seed: str
    counts: dict[str, int]
    only: dict[str, list[int]]
    spawned: int

    def indices(self, family: str) -> list[int]:
        if self.only:
            return self.only.get(family, [])
        return list(range(self.counts[family]))


def _settings() -> Settings:
    mode = "long" if os.environ.get("CNNKIT_FUZZ", "") == "long" else "ci"
    counts = {f: n * (LONG_FACTOR if mode == "long" else 1) for f, n in CI_CASES.items()}
    if os.environ.get("CNNKIT_FUZZ_CASES"):
        counts = dict.fromkeys(counts, int(os.environ["CNNKIT_FUZZ_CASES"]))
    only: dict[str, list[int]] = {}
    for item in filter(None, os.environ.get("CNNKIT_FUZZ_ONLY", "").split(",")):
        family, index = item.strip().split(":")
        only.setdefault(family, []).append(int(index))
    seed = os.environ.get("CNNKIT_FUZZ_SEED", "0")
    return Settings(seed, counts, only, 0 if only else SPAWNED[mode])


@pytest.fixture(scope="session")
def fuzz_settings() -> Settings:
    return _settings()


@pytest.fixture(scope="session")
def worker(tmp_path_factory: pytest.TempPathFactory):
    if sys.platform != "linux":  # fork() after importing torch, /proc/PID/status
        pytest.skip("the fuzz worker needs Linux")
    server = Worker(tmp_path_factory.mktemp("fuzz-worker") / "worker.log")
    yield server
    server.close()


# Checkpoints whose checksum is valid but whose content is hostile: a field of a trained
# checkpoint is replaced (the value is a Python expression evaluated with torch at hand) and
# the checksum recomputed, so only the loader's own checks can stop them.
CRAFTED = {
    "recipe: alias bomb": ("recipe", repr("input: [1, 8, 8]\nmodel:\n  layers: [relu]\n" + BOMB)),
    "recipe: nesting 1000": ("recipe", repr("input: [1, 8, 8]\nmodel: " + "[" * 1000 + "]" * 1000)),
    "recipe: python tag": ("recipe", repr("input: !!python/object/apply:os.system [touch pwned]")),
    "recipe: 2 MB": ("recipe", repr(TINY + "#" * (2 << 20) + "\n")),
    "recipe: repeat 1e9": (
        "recipe",
        repr(TINY.replace("    - relu\n", "    - repeat: {times: 1000000000, layers: [relu]}\n")),
    ),
    "recipe: a list": ("recipe", "[1, 2, 3]"),
    "epoch: -5": ("epoch", "-5"),
    "epoch: text": ("epoch", "'x'"),
    "classes: 3": ("classes", "3"),
    "mean: text": ("mean", "'x'"),
    "task: nope": ("task", "'nope'"),
    "name: 5": ("name", "5"),
    "input_shape: 1e9": ("input_shape", "[1, 10**9, 10**9]"),
    "model: empty": ("model", "{}"),
    "model: wrong shape": ("model", "{'c1.weight': torch.zeros(10**4)}"),
    "model: a list": ("model", "[torch.zeros(3)]"),
}
CRAFT = """
import torch
from cnnkit.train.checkpoint import CHECKSUM, checksum
obj = torch.load("run/last.pt", weights_only=True)
obj[FIELD] = VALUE
obj[CHECKSUM] = checksum(obj)
torch.save(obj, OUT)
"""


def _train(worker: Worker, folder: Path, argv: list[str], files: dict[str, bytes]) -> None:
    outcome = run(worker, Case("setup", 0, argv, files), folder)
    assert outcome.result["code"] == 0, outcome.result["stderr"]


@pytest.fixture(scope="session")
def fixtures(worker: Worker, tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    """The trained run every checkpoint case corrupts, another recipe's run, crafted files."""
    base = tmp_path_factory.mktemp("fuzz-fixtures")
    _train(
        worker, base / "a", ["train", "tiny.yaml", "--out", "run", "--set", "train.epochs=2"], {}
    )
    other = TINY.replace("out: 4", "out: 6")
    _train(
        worker, base / "b", ["train", "other.yaml", "--out", "run"], {"other.yaml": other.encode()}
    )
    crafted = {}
    for i, (name, (key, value)) in enumerate(CRAFTED.items()):
        out = base / "a" / f"crafted{i}.pt"
        code = CRAFT.replace("FIELD", repr(key)).replace("VALUE", value)
        code = code.replace("OUT", repr(str(out)))
        result = worker.send({"dir": str(base / "a"), "argv": [], "python": code})
        assert result["code"] == 0, result["stderr"]
        crafted[name] = out
    return Fixtures(base / "a" / "run", base / "b" / "run", crafted)


TALLY: Counter = Counter()  # (family, verdict) -> cases, for the summary line
KNOWN_SEEN: Counter = Counter()  # known class -> cases that matched it


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook
    if not TALLY:
        return
    families = sorted({f for f, _ in TALLY})
    for family in families:
        parts = [f"{v} {n}" for (f, v), n in sorted(TALLY.items()) if f == family]
        terminalreporter.write_line(f"fuzz {family}: {', '.join(parts)}")
    for name, n in sorted(KNOWN_SEEN.items()):
        terminalreporter.write_line(f"fuzz known (xfail) {name}: {n} case(s)")


__all__ = ["FAMILIES", "KNOWN_SEEN", "TALLY", "Settings"]
