"""``train.checkpoint_every``: a run stopped mid-epoch resumes at its step, exactly.

A real process is stopped at exact optimiser steps with the test-only hook
``CNNKIT_TEST_KILL_AT=train:step:N[:SIGNAL]`` (a Ctrl-C, a SIGTERM) and just after a mid-epoch
``last.pt`` is saved (SIGKILL); after each stop ``cnnkit train --resume RUN`` goes on, and the
end is compared with the uninterrupted run: identical weights, EMA weights, ``metrics.csv``,
``grad_stats.csv`` and summary results. The recipe has everything that draws random numbers or
carries state across steps: dropout, two augmentations, gradient accumulation and an EMA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli
from tests.test_kill_resume import assert_same_run, resume, stopped_at, temporaries
from tests.trainkit import tiny_recipe

# 200 samples: 140 train images, 14 micro-batches of 10, 7 optimiser steps per epoch.
MIDEPOCH = """\
data:
  name: synthetic
  samples: 200
  classes: 10
  augment: [hflip, {random_crop: {padding: 1}}]
train: {epochs: 2, batch_size: 10, accumulate: 2, ema: 0.9, lr: 0.05, device: cpu, CHECKPOINTS}
"""


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _recipe(folder: Path, checkpoints: str, name: str) -> Path:
    return tiny_recipe(folder, MIDEPOCH.replace("CHECKPOINTS", checkpoints), name)


def _reference(tmp_path: Path) -> tuple[Path, Path]:
    recipe = _recipe(tmp_path, "checkpoint_every: 3", "mid.yaml")
    run = tmp_path / "reference"
    r = run_cli("train", str(recipe), "--out", str(run), "--grad-stats", "--json")
    assert r.code == 0, r.err
    return recipe, run


def _partial(run: Path) -> tuple[int, int]:
    record = load_checkpoint(run / "last.pt")["partial"]
    return record["epoch"], record["step"]


def test_mid_epoch_checkpoints_change_no_number(tmp_path, one_thread):
    _, ref = _reference(tmp_path)
    plain = _recipe(tmp_path, "checkpoint_every: null", "plain.yaml")
    run = tmp_path / "plain"
    r = run_cli("train", str(plain), "--out", str(run), "--grad-stats", "--json")
    assert r.code == 0, r.err
    a, b = load_checkpoint(ref / "last.pt"), load_checkpoint(run / "last.pt")
    assert "partial" not in a  # the epoch-end last.pt replaced the mid-epoch ones
    for part in ("model", "ema"):
        mine, theirs = (
            (a[part] if part == "model" else a[part]["model"]),
            (b[part] if part == "model" else b[part]["model"]),
        )
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part
    assert (ref / "metrics.csv").read_text().count("\n") == 3


def test_stopped_mid_epoch_then_resumed_is_the_uninterrupted_run(tmp_path, one_thread):
    recipe, ref = _reference(tmp_path)
    run = tmp_path / "run"
    again = ("train", "--resume", str(run))
    said = [f"interrupted: resume with cnnkit train --resume {run}"]
    # Ctrl-C after optimiser step 5 of epoch 1: held to the step's end, saved at step 5
    err = stopped_at("train:step:5:SIGINT", "train", str(recipe), "--out", str(run))
    assert err.splitlines() == said
    assert _partial(run) == (0, 5) and temporaries(run) == [] and not (run / ".lock").exists()
    # SIGKILL just after the 3rd save of the resumed process: epoch 1 step 6, epoch 1's end,
    # epoch 2 step 3
    stopped_at("saved:last.pt:3", *again)
    assert _partial(run) == (1, 3) and load_checkpoint(run / "last.pt")["epoch"] == 1
    # SIGTERM after the resumed process's 2nd step (epoch 2 step 5): saved there
    assert stopped_at("train:step:2:SIGTERM", *again).splitlines() == said
    assert _partial(run) == (1, 5)
    resume(run)
    assert_same_run(run, ref)
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(ref / name)["ema"], load_checkpoint(run / name)["ema"]
        assert a["updates"] == b["updates"]
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name
