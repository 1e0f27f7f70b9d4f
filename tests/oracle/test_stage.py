"""The oracle stage is one command: CI runs what CONTRIBUTING.md shows, with the same pins.
Pure text checks, so they run in the main test venv too, where the oracle tests skip."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"\b(torch|torchvision|timm)==([0-9.]+)")


def _oracle_command() -> str:
    guide = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    (line,) = [ln for ln in guide.splitlines() if "CNNKIT_ORACLE=1" in ln and "pytest" in ln]
    return line


def test_ci_pins_the_versions_contributing_shows():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    shown_pins = dict(PIN.findall(_oracle_command()))
    assert set(shown_pins) == {"torch", "torchvision", "timm"}
    assert dict(PIN.findall(ci.split("ORACLE_PINS", 1)[1])) == shown_pins


def test_ci_runs_the_oracle_tests_with_skips_as_failures():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "CNNKIT_ORACLE=1" in ci and "pytest -q tests/oracle" in ci
    assert "pytest -q tests/oracle" in _oracle_command()
