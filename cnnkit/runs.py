"""The run folder: its layout, names, and the plain-text files in it (no torch, no pandas).

``runs/NAME-YYYYmmdd-HHMMSS/`` holds ``recipe.yaml`` (fully resolved), ``metrics.csv`` (one
row per epoch), ``summary.json``, ``last.pt``/``best.pt`` and, with ``--grad-stats``,
``grad_stats.csv``. Text files are replaced atomically like checkpoints, so a killed run never
leaves a truncated CSV behind.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cnnkit.atomic import write_text
from cnnkit.errors import InputError

RECIPE = "recipe.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LAST = "last.pt"
BEST = "best.pt"
GRAD_STATS = "grad_stats.csv"
LOCK = ".lock"


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


@contextlib.contextmanager
def locked(run: Path) -> Iterator[None]:
    """Hold ``run/.lock`` (``flock``, exclusive) while a run writes the folder, so a second run
    on the same folder is refused instead of mixing its files in. The OS drops the lock when the
    process dies, even by SIGKILL, so a killed run can be resumed; the file is removed on exit."""
    handle = _acquire(run / LOCK)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(run / LOCK)  # still holding the lock: no one can take this inode meanwhile
        handle.close()


def _acquire(path: Path) -> Any:
    """Lock ``path``; retry when the file we locked was unlinked (its holder just finished)."""
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InputError(
                f"{path.parent} is being written by another cnnkit run (pid {holder}); wait for "
                f"it to end or choose another folder"
            ) from None
        if _same_file(path, handle.fileno()):
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()


def _same_file(path: Path, fd: int) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def check_recipe_unchanged(run: Path, started_with: str) -> None:
    """A resume continues the recipe the run started with (kept in its checkpoint); a hand-edited
    ``recipe.yaml`` would be silently overwritten and the edit lost, so refuse instead."""
    path = run / RECIPE
    if path.is_file() and path.read_text(encoding="utf-8") != started_with:
        raise InputError(
            f"{path} changed since the run started (edited by hand?); --resume continues the "
            f"recipe in last.pt: restore recipe.yaml, or train a new run with the edited recipe"
        )


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
