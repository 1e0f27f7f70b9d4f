"""Real processes: SIGKILL mid-epoch then --resume, and 2-process DDP through torchrun (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cnnkit.train.checkpoint import load_checkpoint
from tests.trainkit import summary

KILL_RECIPE = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 16, k: 3, padding: 1}, name: c1}
    - relu
    - maxpool: 2
    - flatten
    - {dropout: 0.2, name: drop}
    - {linear: 10, name: fc}
data:
  name: synthetic
  samples: 3000
  augment: [hflip]
train:
  epochs: 4
  batch_size: 4
  lr: 0.01
  scheduler: cosine
  device: cpu
"""


def cnnkit(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnkit", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    recipe = tmp_path / "k.yaml"
    recipe.write_text(KILL_RECIPE)
    full = cnnkit("train", str(recipe), "--out", str(tmp_path / "full"))
    cut = cnnkit("train", str(recipe), "--out", str(tmp_path / "cut"))
    last = tmp_path / "cut/last.pt"
    deadline = time.monotonic() + 90
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.25)  # well inside epoch 2 (an epoch takes about a second)
    os.kill(cut.pid, signal.SIGKILL)
    cut.wait()
    finish(full)
    assert cut.returncode == -signal.SIGKILL
    state = load_checkpoint(last)  # never half-written: it loads
    assert 1 <= state["epoch"] < 4, "the kill must land before the run ended"
    assert not (tmp_path / "cut/summary.json").exists()

    finish(cnnkit("train", "--resume", str(tmp_path / "cut")))
    a = load_checkpoint(tmp_path / "full/last.pt")["model"]
    b = load_checkpoint(last)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert summary(tmp_path / "cut")["epochs"] == 4
    full_rows = (tmp_path / "full/metrics.csv").read_text().splitlines()
    cut_rows = (tmp_path / "cut/metrics.csv").read_text().splitlines()
    assert [r.split(",")[:6] for r in full_rows] == [r.split(",")[:6] for r in cut_rows]


DDP_RECIPE = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - flatten
    - {linear: 10, name: fc}
data: {name: synthetic, samples: 200}
train: {epochs: 2, batch_size: 20, lr: 0.05, device: cpu}
"""


def test_torchrun_two_processes_match_one(tmp_path):
    pytest.importorskip("torch.distributed.run")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    recipe = tmp_path / "d.yaml"
    recipe.write_text(DDP_RECIPE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--standalone",
            "-m",
            "cnnkit",
            "train",
            str(recipe),
            "--out",
            str(tmp_path / "ddp"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnkit",
            "train",
            str(recipe),
            "--out",
            str(tmp_path / "one"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr
    ddp = summary(tmp_path / "ddp")
    assert ddp["world_size"] == 2 and ddp["epochs"] == 2
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "best.pt",
        "last.pt",
        "metrics.csv",
        "recipe.yaml",
        "summary.json",
    ]
    # 2 ranks x 10 images with averaged gradients = 1 process x 20 images (no BN, no dropout)
    a = load_checkpoint(tmp_path / "ddp/last.pt")["model"]
    b = load_checkpoint(tmp_path / "one/last.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert ddp["test"]["accuracy"] == pytest.approx(summary(tmp_path / "one")["test"]["accuracy"])
