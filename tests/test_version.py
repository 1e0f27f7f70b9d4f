"""One source for the version: ``cnnkit/__init__.py``; setuptools and ``--version`` read it."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cnnkit

ROOT = Path(__file__).resolve().parents[1]


def test_cli_version_is_the_installed_metadata_version():
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"cnnkit {importlib.metadata.version('cnnkit')}"
    assert done.stdout.strip() == f"cnnkit {cnnkit.__version__}"


def test_pyproject_reads_the_version_from_the_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"], "the version belongs in cnnkit/__init__.py only"
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "cnnkit.__version__"}


def test_the_version_is_a_plain_literal_setuptools_can_read_without_importing():
    source = (ROOT / "cnnkit" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+[^"]*"$', source, re.M)


def test_the_changelog_has_a_section_for_the_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(
        rf"^## \[{re.escape(cnnkit.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M
    )
