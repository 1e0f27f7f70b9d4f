"""A pinned reproduction of every known failure class (tests/fuzz/known.py), kept as a strict
xfail: when the branch that owns the fix is merged, the reproduction passes, this test fails
as XPASS, and the class's entry in KNOWN is to be deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.cases import Fixtures
from tests.fuzz.known import KNOWN, known_class
from tests.fuzz.runner import Case, Worker, report, run


class StillFails(AssertionError):
    """The reproduction still fails as its class: the expected state until the fix lands."""


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
    copies = {"run": fixtures.run} if known.run or known.crafted else {}
    found = dict(known.files())
    for target, crafted in known.crafted.items():
        found[target] = fixtures.crafted[crafted].read_bytes()
    case = Case("known", 0, list(known.argv), found, copies, known.note or name)
    outcome = run(worker, case, tmp_path / "case")
    if outcome.failed:  # it must fail as this class, or the fuzz tests forgive the wrong thing
        assert known_class(outcome) == name, report(outcome, "-")
        raise StillFails(report(outcome, "-"))
