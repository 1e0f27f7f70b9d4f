"""Small recipes and data files for the train/eval tests, generated in tmp folders."""

from __future__ import annotations

import json
from pathlib import Path

TINY_MODEL = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - maxpool: 2
    - flatten
    - {dropout: 0.1, name: drop}
    - {linear: 10, name: fc}
"""

TINY_TRAIN = """\
data:
  name: synthetic
  samples: 200
  classes: 10
train:
  epochs: 3
  batch_size: 20
  lr: 0.05
  device: cpu
"""


def tiny_recipe(folder: Path, extra: str = TINY_TRAIN, name: str = "tiny.yaml") -> Path:
    """A 1x8x8 recipe that trains in well under a second per epoch."""
    path = folder / name
    path.write_text(TINY_MODEL + extra, encoding="utf-8")
    return path


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())
