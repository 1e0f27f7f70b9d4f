"""Training output counts what the run trains on: images for image data, samples for token
ids and 1-D signals (the metrics.csv and --json field stays ``images_per_s``)."""

from __future__ import annotations

import json

import pytest

from tests.clitools import run_cli
from tests.trainkit import tiny_recipe

WAVES = """\
input: [1, 16]
model:
  layers:
    - {conv: {out: 4, k: 3}}
    - relu
    - global_maxpool
    - {linear: 3}
data: {name: waves, samples: 60}
train: {epochs: 2, batch_size: 20, device: cpu}
"""
SENTIMENT = """\
input: [10]
model:
  layers:
    - {embedding: {vocab: 64, dim: 4, padding_idx: 0}}
    - {conv: {out: 4, k: 3}}
    - relu
    - global_maxpool
    - {linear: 2}
data: {name: sentiment, samples: 60}
train: {epochs: 2, batch_size: 20, device: cpu}
"""


@pytest.mark.parametrize("text", [WAVES, SENTIMENT], ids=["signals", "text"])
def test_signal_and_text_runs_say_samples(tmp_path, text):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "run"))
    assert r.code == 0, r.err
    epoch_lines = [line for line in r.err.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all(line.endswith(" s") for line in epoch_lines)
    assert all("samples/s" in line for line in epoch_lines) and "img/s" not in r.err
    assert "samples/s" in r.out and "img/s" not in r.out
    assert "samples with best.pt" in r.out and " images" not in r.out
    metrics = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "images_per_s" in metrics  # the file's column keeps its name
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "images_per_s" in summary["final"]


def test_image_runs_keep_img_per_s(tmp_path):
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "run"))
    assert r.code == 0, r.err
    assert "img/s" in r.err and "img/s" in r.out and "samples/s" not in r.err + r.out
    assert "images with best.pt" in r.out


def test_the_live_bar_says_samples_for_samples():
    """The rich bar (a terminal) shows the same unit as the log lines."""
    from cnnkit.cli.train import _ProgressReporter

    bar = _ProgressReporter()
    bar.unit = "samples"
    bar.epoch_start(0, 1, 3)
    bar.epoch_end({"epoch": 1, "images_per_s": 1234.0, "val_accuracy": 0.5})
    stats = bar.progress.tasks[0].fields["stats"]
    bar.close()
    assert stats.endswith("1,234 samples/s"), stats
