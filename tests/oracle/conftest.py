"""The oracle stage: cnnkit's built-in recipes against torchvision and timm themselves.

These tests need torchvision (and timm); the main test venv has neither, so there they skip.
CI's oracle stage (``.ci/run``, the oracle command in CONTRIBUTING.md) sets ``CNNKIT_ORACLE=1`` in a
venv with the pinned torch/torchvision/timm: then a missing library is an error and any skip
is a failure, so a broken oracle venv can never pass by skipping everything.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

ORACLE = os.environ.get("CNNKIT_ORACLE") == "1"


def require(name: str) -> ModuleType:
    """``name`` imported; a skip in the main venv, a failure in the oracle stage."""
    if not ORACLE:
        return pytest.importorskip(name)
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pytest.fail(f"CNNKIT_ORACLE=1 but {name} cannot be imported: {err}", pytrace=False)


@pytest.fixture(scope="session")
def torchvision() -> ModuleType:
    return require("torchvision")


@pytest.fixture(scope="session")
def timm() -> ModuleType:
    return require("timm")


def pytest_report_header(config: pytest.Config) -> str:
    found = []
    for name in ("torch", "torchvision", "timm"):
        try:
            found.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            found.append(f"{name} missing")
    return f"oracle ({'CNNKIT_ORACLE=1' if ORACLE else 'skips if missing'}): " + ", ".join(found)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CNNKIT_ORACLE=1 a skipped oracle test counts as failed: the stage exists to run."""
    outcome = yield
    report = outcome.get_result()
    if ORACLE and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"CNNKIT_ORACLE=1: an oracle test may not skip ({report.longrepr})"
