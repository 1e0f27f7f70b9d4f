"""Pure analyses over a recipe graph: shapes and counts (receptive fields come with issue 4)."""

from __future__ import annotations

from cnnkit.analysis.counts import node_counts, totals
from cnnkit.analysis.shapes import shapes

__all__ = ["node_counts", "shapes", "totals"]
