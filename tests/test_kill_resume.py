"""Killed at any moment, a run resumes to exactly the run that was never killed.

Real processes are stopped at exact moments with the test-only hook ``CNNKIT_TEST_KILL_AT``
(``cnnkit.train.runs.kill_point``: inside a checkpoint write with the temporary file on disk, just
after a checkpoint is in place), and at random moments by the clock: by SIGKILL, and by
SIGINT/SIGTERM, which must print one line with the resume command, exit 130/143 and leave
no temporary file. After each stop the
documented command continues the run (``cnnkit train --resume RUN``), and the end result is
compared with an uninterrupted reference run trained in this process: identical weights in
``last.pt`` and ``best.pt``, identical ``metrics.csv`` (but the timing columns),
``grad_stats.csv`` and summary results. Every process uses one intra-op thread, as the
reference does, so float reductions are the same.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli
from tests.trainkit import TINY_TRAIN, summary, tiny_recipe

TIMING = ("time_s", "images_per_s")  # wall-clock columns, different in every run
RESULTS = ("status", "epochs", "best", "test", "test_weights", "epochs_planned", "params")


@pytest.fixture
def one_thread():
    """In-process runs use one intra-op thread, like the subprocesses (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def reference(tmp_path, one_thread) -> tuple[Path, Path]:
    """The recipe and its run, trained without interruption."""
    recipe = tiny_recipe(tmp_path, TINY_TRAIN)
    run = tmp_path / "reference"
    r = run_cli("train", str(recipe), "--out", str(run), "--grad-stats", "--json")
    assert r.code == 0, r.err
    return recipe, run


def cnnkit(*args: str, kill_at: str = "") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNKIT_TEST_KILL_AT": kill_at}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnkit", *args, "--grad-stats", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stopped_at(moment: str, *args: str) -> str:
    """Run ``cnnkit ARGS``, require that it died at ``moment`` (``POINT:N[:SIGNAL]``, SIGKILL by
    default) and return its stderr."""
    process = cnnkit(*args, kill_at=moment)
    _, err = process.communicate(timeout=120)
    named = moment.split(":")[3].partition("*")[0] if moment.count(":") == 3 else "SIGKILL"
    sent = getattr(signal, named)
    code = -signal.SIGKILL if sent == signal.SIGKILL else 128 + sent
    assert process.returncode == code, (moment, process.returncode, err)
    return err


def resume(run: Path) -> None:
    r = run_cli("train", "--resume", str(run), "--grad-stats", "--json")
    assert r.code == 0, r.err


def temporaries(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp"))


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def assert_same_run(run: Path, reference: Path) -> None:
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(reference / name), load_checkpoint(run / name)
        assert a["epoch"] == b["epoch"]
        assert a["model"].keys() == b["model"].keys()
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
    a, b = (
        load_checkpoint(reference / "last.pt")["state"],
        load_checkpoint(run / "last.pt")["state"],
    )
    assert (a["status"], a["best_epoch"], a["best_value"]) == (
        b["status"],
        b["best_epoch"],
        b["best_value"],
    )
    assert metrics(run) == metrics(reference)
    assert (run / "grad_stats.csv").read_text() == (reference / "grad_stats.csv").read_text()
    mine, theirs = summary(run), summary(reference)
    assert {k: mine.get(k) for k in RESULTS} == {k: theirs.get(k) for k in RESULTS}
    strip = {k: v for k, v in mine["final"].items() if k not in TIMING}
    assert strip == {k: v for k, v in theirs["final"].items() if k not in TIMING}
    assert temporaries(run) == [] and not (run / ".lock").exists()


def test_stopped_at_every_kind_of_moment_then_resumed_is_the_uninterrupted_run(tmp_path, reference):
    """One run stopped five times, each time resumed by the one documented command; a signal
    inside a checkpoint write lets the save complete first."""
    recipe, ref = reference
    run = tmp_path / "run"
    again = ("train", "--resume", str(run))
    said = [f"interrupted: resume with cnnkit train --resume {run}"]

    # SIGKILL before the first checkpoint, inside the write of epoch 1's best.pt
    stopped_at("write:best.pt:1", "train", str(recipe), "--out", str(run))
    left = temporaries(run)
    assert not (run / "last.pt").exists() and len(left) == 1 and left[0].startswith(".best.pt.")
    # SIGKILL with best.pt but still no last.pt (this resume started again from recipe.yaml);
    # the stale temporary file of the first kill is removed first, in one line
    err = stopped_at("saved:best.pt:1", *again)
    note = f"removed 1 temporary file a killed write left in {run}: {left[0]}"
    assert err.splitlines()[0] == note
    assert (run / "best.pt").exists() and not (run / "last.pt").exists()
    assert temporaries(run) == []
    # Ctrl-C twice inside the write of best.pt: the save completes (best.pt, last.pt and
    # metrics.csv of epoch 1), the second Ctrl-C changes nothing, then one line, exit 130
    assert stopped_at("write:best.pt:1:SIGINT*2", *again).splitlines() == said
    assert load_checkpoint(run / "last.pt")["epoch"] == 1 and len(metrics(run)) == 1
    assert temporaries(run) == [] and not (run / ".lock").exists()
    # SIGKILL inside the write of epoch 2's last.pt (epoch 2's grad_stats rows are written)
    stopped_at("write:last.pt:1", *again)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1 and temporaries(run)
    # SIGTERM inside the write of epoch 2's last.pt again: the stale file goes (one line),
    # the save completes, then one line; nothing is left behind
    stale = temporaries(run)
    note = f"removed 1 temporary file a killed write left in {run}: {stale[0]}"
    assert stopped_at("write:last.pt:1:SIGTERM", *again).splitlines() == [note, *said]
    assert load_checkpoint(run / "last.pt")["epoch"] == 2 and temporaries(run) == []
    assert not (run / ".lock").exists()
    # SIGKILL between the final last.pt and the final metrics.csv row
    stopped_at("saved:last.pt:1", *again)
    assert load_checkpoint(run / "last.pt")["state"]["status"] == "completed"
    assert len(metrics(run)) == 2 and not (run / "summary.json").exists()

    resume(run)
    assert_same_run(run, ref)
    # after the run finished: resuming changes nothing, not a byte
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    resume(run)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_an_extension_killed_mid_write_goes_on_to_the_uninterrupted_run(tmp_path, reference):
    """``--resume RUN --set train.epochs=3`` of a 1-epoch run, SIGKILLed inside the write of its
    first ``last.pt`` (recipe.yaml already holds 3 epochs), then SIGINT with the same command
    after its second: the plain ``--resume`` finishes it as the 3-epoch run trained at once."""
    recipe, ref = reference
    run = tmp_path / "run"
    first = cnnkit("train", str(recipe), "--out", str(run), "--set", "train.epochs=1")
    assert first.wait(timeout=120) == 0, first.communicate()[1]
    extend = ("train", "--resume", str(run), "--set", "train.epochs=3")
    stopped_at("write:last.pt:1", *extend)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    assert "epochs: 3" in (run / "recipe.yaml").read_text() and temporaries(run)
    stopped_at("saved:last.pt:1:SIGINT", "train", "--resume", str(run))  # the plain command
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    resume(run)
    assert_same_run(run, ref)
    assert summary(run)["extended"] == {"from": 1, "to": 3}


def test_sigkill_at_random_moments_then_resume_is_the_uninterrupted_run(tmp_path, reference):
    recipe, ref = reference
    moments = random.Random(11)
    runs = [tmp_path / f"run{i}" for i in range(2)]
    processes = [cnnkit("train", str(recipe), "--out", str(run)) for run in runs]  # at once
    delays = [moments.uniform(0.0, 0.6) for _ in runs]  # after training started
    started: list[float | None] = [None for _ in runs]
    pending, deadline = set(range(len(runs))), time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            if started[i] is None and (runs[i] / "recipe.yaml").exists():
                started[i] = time.monotonic()  # data loaded, folder locked, epoch 1 begins
            if started[i] is not None and time.monotonic() >= started[i] + delays[i]:
                processes[i].send_signal(signal.SIGKILL)
                pending.discard(i)
        time.sleep(0.005)
    for process in processes:
        process.communicate(timeout=120)
    for run in runs:
        resume(run)  # also when the kill came too late: a finished run resumes to itself
        assert_same_run(run, ref)


def test_an_interrupt_passes_click_and_names_the_run_to_resume(tmp_path, monkeypatch):
    """Click turned KeyboardInterrupt into a bare "aborted" (exit 1) before our handler ran."""
    from cnnkit.interrupts import Interrupted
    from cnnkit.train import experiment

    def interrupted(*args, **kwargs):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(experiment, "fit", interrupted)
    run = tmp_path / "run"
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(run), "--json")
    assert (r.code, r.out) == (143, "")
    assert r.err == f"interrupted: resume with cnnkit train --resume {run}\n"
    assert sorted(p.name for p in run.iterdir()) == ["recipe.yaml"]  # unlocked, no temporaries


def test_a_signal_the_parent_ignores_stays_ignored():
    """``nohup`` and a script's background jobs ignore SIGINT; cnnkit must not undo that."""
    from cnnkit.interrupts import handled

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with handled():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
