"""The run folder: its layout, names, and the plain-text files in it (no torch, no pandas).

``runs/NAME-YYYYmmdd-HHMMSS/`` holds ``recipe.yaml`` (fully resolved), ``metrics.csv`` (one
row per epoch), ``summary.json``, ``last.pt``/``best.pt`` and, with ``--grad-stats``,
``grad_stats.csv``. Text files are replaced atomically like checkpoints, so a killed run never
leaves a truncated CSV behind.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cnnkit.atomic import write_text

RECIPE = "recipe.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LAST = "last.pt"
BEST = "best.pt"
GRAD_STATS = "grad_stats.csv"


def new_run_dir(name: str, root: Path = Path("runs"), out: Path | None = None) -> Path:
    """Create ``out``, or ``root/NAME-TIMESTAMP`` (with ``-2``, ``-3`` if that exists)."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{name}-{stamp}"
    n = 2
    while path.exists():
        path, n = root / f"{name}-{stamp}-{n}", n + 1
    path.mkdir(parents=True)
    return path


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as CSV; the header is the union of keys in first-seen order."""
    rows = list(rows)
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_metrics(run: Path, history: list[dict[str, Any]]) -> None:
    write_text(run / METRICS, csv_text(history))


def write_summary(run: Path, summary: dict[str, Any]) -> None:
    write_text(run / SUMMARY, json.dumps(summary, indent=2) + "\n")


def read_summary(run: Path) -> dict[str, Any]:
    return json.loads((run / SUMMARY).read_text(encoding="utf-8"))


def append_grad_stats(run: Path, epoch: int, norms: Mapping[str, float]) -> None:
    """Long format (``epoch,parameter,grad_norm``): one row per parameter tensor per epoch."""
    file = run / GRAD_STATS
    new = not file.exists()
    with open(file, "a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if new:
            writer.writerow(["epoch", "parameter", "grad_norm"])
        writer.writerows([epoch, name, f"{value:.6g}"] for name, value in norms.items())
