"""The pinned reproduction of every failure class the fuzz suite found (tests/fuzz/known.py):
a fixed class must stay fixed; an open one is a strict xfail until its fix lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.cases import Fixtures
from tests.fuzz.known import FIXED, KNOWN, Known, known_class
from tests.fuzz.runner import Case, Outcome, Worker, report, run


class StillFails(AssertionError):
    """The reproduction still fails as its class: the expected state until the fix lands."""


def _replay(known: Known, name: str, worker: Worker, fixtures: Fixtures, where: Path) -> Outcome:
    copies = {"run": fixtures.run} if known.run or known.crafted else {}
    found = dict(known.files())
    for target, crafted in known.crafted.items():
        found[target] = fixtures.crafted[crafted].read_bytes()
    case = Case("known", 0, list(known.argv), found, copies, known.note or name)
    return run(worker, case, where)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_class_stays_fixed(name: str, worker: Worker, fixtures: Fixtures, tmp_path: Path):
    outcome = _replay(FIXED[name], name, worker, fixtures, tmp_path / "case")
    assert not outcome.failed, report(outcome, "-")
    assert outcome.verdict == "refused", report(outcome, "-")  # each is hostile input


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_class_still_fails(
    name: str, worker: Worker, fixtures: Fixtures, tmp_path: Path, request
) -> None:
    known = KNOWN[name]
    request.applymarker(
        pytest.mark.xfail(
            raises=StillFails,
            strict=True,
            reason=f"known: {known.summary}; fixed on branch {known.owner}, then delete "
            f"KNOWN[{name!r}] in tests/fuzz/known.py",
        )
    )
    outcome = _replay(known, name, worker, fixtures, tmp_path / "case")
    if outcome.failed:  # it must fail as this class, or the fuzz tests forgive the wrong thing
        assert known_class(outcome) == name, report(outcome, "-")
        raise StillFails(report(outcome, "-"))
