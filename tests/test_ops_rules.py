"""Every layer kind states its ops rule, and docs/reference/ops.md lists exactly the registry's
rules (that page's table is generated: python docs/reference/generate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnkit.analysis.costs import ops_rules

OPS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "ops.md"
OPS_DOC = OPS_PAGE.read_text(encoding="utf-8")


@pytest.mark.parametrize(("kind", "rule"), sorted(ops_rules().items()))
def test_rule_is_stated_and_documented(kind, rule):
    assert "from the count rule" not in rule and "not stated" not in rule, kind
    cell = rule.replace("|", "\\|")  # as a Markdown table cell
    assert f"| `{kind}` | {cell} |" in OPS_DOC
