"""A run records what its numbers depend on, and refuses to resume over other data."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from cnnkit.train.experiment import train_run
from cnnkit.train.loop import Silent
from cnnkit.train.plan import load_with_overrides, plan_from_recipe
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe

NPZ_TRAIN = """\
data:
  name: npz
  path: {path}
train:
  epochs: 2
  batch_size: 20
  device: cpu
"""


class StopAt(Silent):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_start(self, epoch, epochs, steps):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _npz(path, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 10)
    return path


def test_summary_records_versions_threads_device_and_data(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recorded count is measured, not assumed
    try:
        r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "r"), "--json")
    finally:
        torch.set_num_threads(threads)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["versions"] == {
        "cnnkit": cnnkit.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    assert summary["threads"] == 1 and summary["device"] == "cpu"
    assert len(summary["data"]["fingerprint"]) == 32
    assert json.loads((tmp_path / "r/summary.json").read_text()) == summary


def test_the_fingerprint_follows_the_data_not_the_file_times(tmp_path):
    path = _npz(tmp_path / "d.npz")

    def digest(**raw):
        return load_data(
            parse_data({"name": "npz", "path": str(path), **raw}, NoLocation()), (1, 8, 8)
        ).fingerprint

    first = digest()
    path.touch()
    assert digest() == first  # same bytes
    assert digest(seed=1) != first  # another split
    assert digest(limit=30) != first
    arrays = dict(np.load(path))
    arrays["x"][5, 3, 3] ^= 1  # one pixel
    np.savez(path, **arrays)
    assert digest() != first


def test_resume_over_changed_data_is_refused_in_one_line(tmp_path):
    data = _npz(tmp_path / "d.npz")
    original = data.read_bytes()
    recipe = tiny_recipe(tmp_path, extra=NPZ_TRAIN.format(path=data))
    with pytest.raises(KeyboardInterrupt):
        train_run(
            plan_from_recipe(load_with_overrides(recipe), "t"),
            out=tmp_path / "run",
            reporter=StopAt(1),
        )
    arrays = dict(np.load(data))
    arrays["y"][0] = 9  # one label changed
    np.savez(data, **arrays)
    r = run_cli("train", "--resume", str(tmp_path / "run"))
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert str(tmp_path / "run/last.pt") in r.err and "data differs" in r.err
    data.write_bytes(original)
    r = run_cli("train", "--resume", str(tmp_path / "run"), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["epochs"] == 2
