"""Every layer kind states its ops rule, and the README lists exactly the registry's rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnkit.analysis.costs import ops_rules

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize(("kind", "rule"), sorted(ops_rules().items()))
def test_rule_is_stated_and_documented(kind, rule):
    assert "from the count rule" not in rule and "not stated" not in rule, kind
    assert f"| `{kind}` | {rule} |" in README
