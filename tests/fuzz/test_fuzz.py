"""Issue 11's fuzz suite: seeded hostile inputs to every command, no internal error, no hang
over 10 s, no run over 1 GB, no invalid JSON, no code run (see tests/fuzz/README.md)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fuzz.cases import FAMILIES, Fixtures, cli_case
from tests.fuzz.conftest import KNOWN_SEEN, TALLY, Settings
from tests.fuzz.known import known_class
from tests.fuzz.runner import Outcome, Worker, report, run


def _judge(family: str, outcomes: list[Outcome], seed: str) -> list[Outcome]:
    """Tally the verdicts; return the failures no known class explains."""
    unknown = []
    for outcome in outcomes:
        TALLY[family, outcome.verdict] += 1
        if outcome.failed:
            name = known_class(outcome)
            if name is None:
                unknown.append(outcome)
            else:
                KNOWN_SEEN[name] += 1
    return unknown


def _last(outcome: Outcome) -> str:
    lines = outcome.result["stderr"].strip().splitlines() or ["(no stderr)"]
    return lines[-1][:160]


def _message(unknown: list[Outcome], outcomes: list[Outcome], seed: str) -> str:
    """The first failures in full, then one line for each of the others."""
    verdicts = Counter(o.verdict for o in outcomes)
    head = f"{len(unknown)} of {len(outcomes)} cases failed ({dict(verdicts)}):\n\n"
    rest = [f"[{o.case.id}] {o.verdict}: {o.case.note} -- {_last(o)}" for o in unknown[10:]]
    return head + "\n\n".join(report(o, seed) for o in unknown[:10]) + "\n\n" + "\n".join(rest)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz(
    family: str, worker: Worker, fixtures: Fixtures, fuzz_settings: Settings, tmp_path: Path
) -> None:
    """Every case of the family ends ok or as a clean one-line refusal."""
    indices = fuzz_settings.indices(family)
    if not indices:
        pytest.skip(f"CNNKIT_FUZZ_ONLY names no {family} case")
    make = FAMILIES[family]
    start = time.monotonic()
    outcomes = [
        run(worker, make(fuzz_settings.seed, i, fixtures), tmp_path / f"{family}-{i}")
        for i in indices
    ]
    unknown = _judge(family, outcomes, fuzz_settings.seed)
    if unknown:
        pytest.fail(_message(unknown, outcomes, fuzz_settings.seed), pytrace=False)
    if len(outcomes) >= 20:  # a generator whose cases all fail early (or none) tests little
        verdicts = Counter(o.verdict for o in outcomes)
        assert verdicts["ok"] and verdicts["refused"], verdicts
    print(f"{family}: {len(outcomes)} cases in {time.monotonic() - start:.1f} s")


def test_fuzz_spawned(
    worker: Worker, fixtures: Fixtures, fuzz_settings: Settings, tmp_path: Path
) -> None:
    """A sample of command lines through a fresh `python -m cnnkit`, as a user runs it: the
    fork server's shortcut (imports done once) must not hide what the entry point does."""
    if not fuzz_settings.spawned:
        pytest.skip("replaying single cases")
    outcomes = []
    for i in range(fuzz_settings.spawned):
        case = cli_case(fuzz_settings.seed, 100_000 + i, fixtures)
        case.spawn = True
        outcomes.append(run(worker, case, tmp_path / f"spawn-{i}"))
    unknown = _judge("spawned", outcomes, fuzz_settings.seed)
    if unknown:
        pytest.fail(_message(unknown, outcomes, fuzz_settings.seed), pytrace=False)
