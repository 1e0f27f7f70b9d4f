"""The run folder: its layout, names, and the plain-text files in it (no torch, no pandas).

``runs/NAME-YYYYmmdd-HHMMSS/`` holds ``recipe.yaml`` (fully resolved), ``metrics.csv`` (one
row per epoch), ``summary.json``, ``last.pt``/``best.pt`` and, with ``--grad-stats``,
``grad_stats.csv``. Text files are replaced atomically like checkpoints, so a killed run never
leaves a truncated CSV behind.

A run folder is consistent at any moment a process can die (SIGKILL included): ``last.pt`` is
the source of truth and everything else is brought back in line with it when the folder is
opened again (``open_folder``, ``match_checkpoint``): stale temporary files go, ``metrics.csv``
is rewritten from the checkpoint's history and ``grad_stats.csv`` loses rows of epochs after
it. ``--overwrite`` moves the old run into ``.replaced/`` and deletes it only once the new run
has written its first ``last.pt``; a new run that ends (or is killed) before that puts the old
run back, so the folder holds one run or the other, never a mix.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import re
import shlex
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cnnkit.atomic import write_text
from cnnkit.errors import CheckpointError, InputError
from cnnkit.jsonsafe import dumps

RECIPE = "recipe.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LAST = "last.pt"
BEST = "best.pt"
GRAD_STATS = "grad_stats.csv"
LOCK = ".lock"
GRAD_HEADER = "epoch,parameter,grad_norm"
RUN_FILES = (RECIPE, METRICS, SUMMARY, LAST, BEST, GRAD_STATS)  # what a run writes, all of it
HELD = (LAST, BEST, METRICS, SUMMARY)  # results: a new run does not replace them unasked
FINISHED = ("completed", "early_stopped")  # a checkpoint with this status has nothing to train
REPLACING, REPLACED, RESTORING = ".replacing", ".replaced", ".restoring"  # --overwrite stages


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


_HELD_LOCKS: Counter[str] = Counter()  # folders this process holds, so nested locking is fine


@contextlib.contextmanager
def locked(run: Path) -> Iterator[None]:
    """Hold ``run/.lock`` (``flock``, exclusive) while a run writes the folder, so a second run
    on the same folder is refused instead of mixing its files in. The OS drops the lock when the
    process dies, even by SIGKILL, so a killed run can be resumed; the file is removed on exit.
    Re-entrant within a process (``--resume`` locks before it reads the folder)."""
    key = os.path.abspath(run)
    if _HELD_LOCKS[key]:
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    handle = _acquire(run / LOCK)
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
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


def open_folder(run: Path, mode: str) -> bool:
    """Make the (locked) folder ready: finish what a killed process left half done and drop
    stale temporary files; then, by ``mode``: ``resume`` keeps the run (``match_checkpoint``
    follows), ``new`` refuses to replace results, ``overwrite`` moves them aside, and
    ``new``/``overwrite``/``restart`` (a ``--resume`` without ``last.pt``) clear what a run
    that never checkpointed left. Returns whether an old run was moved aside."""
    recover(run)
    remove_stale_temps(run)
    if mode == "resume":
        return False
    replacing = set_aside(run) if mode == "overwrite" else False
    if mode == "new":
        check_free(run)
    for name in RUN_FILES:
        if name != RECIPE:  # rewritten atomically by the run itself, never left missing
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run / name)
    return replacing


def check_free(run: Path) -> None:
    """Refuse to start a new run where results are; the message names a command that works in
    the state the folder is in."""
    held = [name for name in HELD if (run / name).exists()]
    if not held:
        return
    again = f"--resume {shlex.quote(str(run))}"
    if (run / LAST).is_file():
        how = f"continue it with {again}"
    elif (run / RECIPE).is_file():
        how = f"it stopped before its first last.pt: start it again with {again}"
    else:
        how = "it has no last.pt or recipe.yaml to resume from"
    raise InputError(
        f"--out {run}: already holds a run ({', '.join(held)}); {how}, choose another folder, "
        f"or pass --overwrite to replace it"
    )


def remove_stale_temps(run: Path) -> list[str]:
    """Temporary files of a write that was killed (``.NAME.PID.tmp`` of the run's own files,
    see ``cnnkit.atomic``; nothing else is touched): no writer can be using them while this
    process holds the folder's lock. Returns the names removed."""
    removed = []
    for name in RUN_FILES:
        for stale in sorted(run.glob(f".{name}.*.tmp")):
            if not re.fullmatch(rf"\.{re.escape(name)}\.\d+\.tmp", stale.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale.name)
    return removed


def stale_note(run: Path, removed: list[str]) -> str:
    """The one line that says what ``remove_stale_temps`` removed."""
    files = "file" if len(removed) == 1 else "files"
    listed = ", ".join(removed)
    return f"removed {len(removed)} temporary {files} a killed write left in {run}: {listed}"


def set_aside(run: Path) -> bool:
    """Move the run's files into ``.replaced/`` (through ``.replacing/``, renamed when every
    file is in, so a kill midway is undone by ``recover``). False when there was nothing."""
    present = [name for name in RUN_FILES if (run / name).exists()]
    if not present:
        return False
    staging = run / REPLACING
    staging.mkdir(exist_ok=True)
    for name in present:
        os.replace(run / name, staging / name)
    os.rename(staging, run / REPLACED)
    return True


def commit_replace(run: Path) -> None:
    """The new run has its first ``last.pt``: the run it replaced is deleted."""
    if (run / REPLACED).is_dir():
        shutil.rmtree(run / REPLACED)


def restore_replaced(run: Path) -> None:
    """The new run ended before its first ``last.pt``: delete its files and put the old run
    back. Each step can be cut by a kill and redone by ``recover``."""
    for name in RUN_FILES:  # only the new run's are here: the old ones are in .replaced
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run / name)
    remove_stale_temps(run)
    os.rename(run / REPLACED, run / RESTORING)
    _move_back(run / RESTORING, run)


def recover(run: Path) -> None:
    """Finish an ``--overwrite`` that a killed process left half done: an unfinished move
    aside or restore is completed; a replaced run is deleted if the new run has a ``last.pt``
    (it committed) and put back if it has not (the new run never got going)."""
    if (run / REPLACING).is_dir():  # the new run had not written anything yet
        _move_back(run / REPLACING, run)
    if (run / RESTORING).is_dir():
        _move_back(run / RESTORING, run)
    if (run / REPLACED).is_dir():
        if (run / LAST).is_file():
            commit_replace(run)
        else:
            restore_replaced(run)


def _move_back(aside: Path, run: Path) -> None:
    for name in RUN_FILES:
        if (aside / name).exists():
            os.replace(aside / name, run / name)
    shutil.rmtree(aside)


def match_checkpoint(run: Path, epoch: int, history: list[dict[str, Any]], status: str) -> None:
    """Bring the files a run writes per epoch in line with the ``last.pt`` it resumes from: a
    kill can land after ``last.pt`` and before ``metrics.csv``, or after ``grad_stats.csv`` got
    rows of the epoch ``last.pt`` does not have yet. A summary of an earlier end (a divergence)
    goes too while the run goes on."""
    write_metrics(run, history)
    truncate_grad_stats(run, epoch)
    if status not in FINISHED:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run / SUMMARY)


def resume_command(run: Path) -> str:
    return f"cnnkit train --resume {shlex.quote(str(run))}"


def name_of(recipe_text: str, run: Path) -> str:
    """The run name a saved ``recipe.yaml`` was trained under (its recipe file's stem, from the
    note ``cnnkit train`` writes on its first line), else the folder's name."""
    first = recipe_text.split("\n", 1)[0]
    found = re.match(r"# resolved by cnnkit train(?: --sweep)? from (.+?)(?: --set .*)?$", first)
    return Path(found.group(1)).stem if found else run.name


def check_restartable(run: Path) -> None:
    """``--resume`` of a folder without ``last.pt`` starts the run again from its
    ``recipe.yaml``; without that either, nothing is there to go on from."""
    if not (run / LAST).is_file() and not (run / RECIPE).is_file():
        raise CheckpointError(
            "not a run folder (no last.pt to resume from, no recipe.yaml to start again from: "
            "a run killed this early wrote nothing); train into it with cnnkit train RECIPE "
            f"--out {shlex.quote(str(run))}",
            where=str(run),
        )


_REACHED: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """Test-only: with ``CNNKIT_TEST_KILL_AT=NAME:N[:SIGNAL[*2]]`` the process sends itself
    SIGNAL (default SIGKILL; ``*2``: twice, a second Ctrl-C) the N-th time it reaches ``name``,
    so a test can stop a run at an exact moment (inside a checkpoint write, between
    ``last.pt`` and ``metrics.csv``)."""
    spec = os.environ.get("CNNKIT_TEST_KILL_AT", "").split(":")
    if len(spec) < 3 or ":".join(spec[:2]) != name or not spec[2].isdigit():
        return
    _REACHED[name] += 1
    if _REACHED[name] == int(spec[2]):
        sent, _, times = (spec[3] if len(spec) > 3 else "").partition("*")
        for _ in range(int(times or 1)):
            os.kill(os.getpid(), getattr(signal, sent, signal.SIGKILL))


def check_recipe_unchanged(run: Path, started_with: str, planned: str = "") -> None:
    """A resume continues the recipe the run started with (kept in its checkpoint); a hand-edited
    ``recipe.yaml`` would be silently overwritten and the edit lost, so refuse instead. An
    extension (``planned``, the recipe with more epochs) killed before its first ``last.pt``
    left that recipe: resuming it with the same ``--set`` goes on."""
    path = run / RECIPE
    known = {text.encode("utf-8") for text in (started_with, planned) if text}
    if path.is_file() and path.read_bytes() not in known:
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
    """``summary.json``; a NaN or infinite value (a diverged loss) is written as ``null``."""
    write_text(run / SUMMARY, dumps(summary) + "\n")


def read_summary(run: Path) -> dict[str, Any]:
    return json.loads((run / SUMMARY).read_text(encoding="utf-8"))


def finished_summary(run: Path, epochs: int, status: str) -> dict[str, Any] | None:
    """The summary a finished run wrote, if it is there and describes that checkpoint (a run
    killed between its final ``last.pt`` and ``summary.json`` has none: it is written again)."""
    try:
        summary = read_summary(run)
    except (OSError, ValueError):
        return None
    ok = isinstance(summary, dict) and (summary.get("epochs"), summary.get("status"))
    return summary if ok == (epochs, status) else None


def truncate_grad_stats(run: Path, epoch: int) -> None:
    """Keep the rows of epochs up to ``epoch`` (the checkpoint's): the epoch a killed run was
    in is trained again on resume, and its rows must not appear twice. A row cut short by the
    kill is dropped too."""
    file = run / GRAD_STATS
    if not file.is_file():
        return
    text = file.read_text(encoding="utf-8", errors="replace")  # damaged rows are dropped
    lines = text.splitlines()
    kept = [line for line in lines[1:] if _grad_row_epoch(line) <= epoch]
    if lines[:1] != [GRAD_HEADER] or len(kept) != len(lines) - 1 or not text.endswith("\n"):
        write_text(file, "\n".join([GRAD_HEADER, *kept]) + "\n")


def _grad_row_epoch(line: str) -> float:
    fields = next(csv.reader([line]), [])
    if len(fields) != 3 or not fields[0].isdigit():
        return float("inf")
    try:
        float(fields[2])
    except ValueError:
        return float("inf")
    return int(fields[0])


def append_grad_stats(run: Path, epoch: int, norms: Mapping[str, float]) -> None:
    """Long format (``epoch,parameter,grad_norm``): one row per parameter tensor per epoch."""
    file = run / GRAD_STATS
    new = not file.exists()
    with open(file, "a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if new:
            writer.writerow(GRAD_HEADER.split(","))
        writer.writerows([epoch, name, f"{value:.6g}"] for name, value in norms.items())
