"""Point targets from a csv of image paths, in memory and streamed (``data.cache: stream``).

Oracles: brute force (the centroid of the Gaussian dot drawn into each file, found in the
decoded and augmented images; the arithmetic of a flip), the in-memory path for the streamed
batches (bit for bit where both apply the same transforms), and an uninterrupted run for a
resumed one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from tests.test_points import _centroid

SIZES = ((30, 26), (36, 32))  # the files' own (H, W): both differ from every stored size


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """80 grey PNGs of one Gaussian dot (σ 1.6 px) at a sub-pixel place 7 px or more inside,
    sizes alternating; ``points.csv`` lists them with the centre (x, y) in the file's pixels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("points")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(80):
        h, w = SIZES[i % 2]
        cx, cy = rng.uniform(7, w - 8), rng.uniform(7, h - 8)
        cols, lines = np.meshgrid(np.arange(w), np.arange(h))
        dot = np.exp(-((cols - cx) ** 2 + (lines - cy) ** 2) / (2 * 1.6**2))
        Image.fromarray(np.round(20 + 200 * dot).astype(np.uint8)).save(root / f"{i:02d}.png")
        rows.append(f"{i:02d}.png,{cx:.6f},{cy:.6f}")
    (root / "points.csv").write_text("path,x,y\n" + "\n".join(rows) + "\n")
    return root / "points.csv"


def config(table: Path, **keys):
    base = {"name": "csv", "path": str(table), "task": "regress", "targets": ["x", "y"]}
    return parse_data({**base, "target_kind": "points", "workers": 0, **keys}, NoLocation())


def every(split, size: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    parts = list(split.slices(range(0, len(split), size), size))
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


STATS = ((0.2,), (0.25,))
STORED = {"resize": [64, 56], "memory_budget": 1}  # 80 x 64 x 56 float32: 1.1 MiB, over 1


def test_points_stream_as_they_load_in_memory_and_sit_on_the_dot(table):
    """Each file resized to the stored 64x56 and centre-cropped to the 60x52 input: ``auto``
    streams over its budget, every split's batches are the in-memory ones bit for bit, and the
    dot's centroid in those images is where the targets say (measured: under 0.02 px; the
    rule without the half-pixel terms, x W'/W, is 0.6 px off, unscaled points 20 px)."""
    memory = load_data(config(table, cache="memory", **STORED), (1, 60, 52), stats=STATS)
    stream = load_data(config(table, **STORED), (1, 60, 52), stats=STATS)
    assert (memory.cache, stream.cache, stream.target_kind) == ("memory", "stream", "points")
    for name in ("train", "val", "test"):
        x, y = every(getattr(stream, name))
        assert torch.equal(x, getattr(memory, name).x), name
        assert torch.equal(y, getattr(memory, name).y), name
    x, y = every(memory.train)
    error = (_centroid(x, 12) - y).abs()
    assert float(error.max()) < 0.05, float(error.max())


SAMPLE = [{"random_resized_crop": {"scale": [0.4, 1.0]}}, "hflip", "colour_jitter"]


def test_per_image_augmentation_moves_each_point_with_its_dot(table):
    """Crops, flips and colours drawn per image (files at their own sizes, out at the stored
    24x20): the dot's centroid in every augmented image, well inside, is within 0.5 px of its
    moved target (measured: under 0.05 px), with any worker count; a sure flip mirrors x."""
    loaded = [
        load_data(config(table, cache="stream", sample_augment=SAMPLE, normalize=False, workers=w),
                  (1, 24, 20))
        for w in (0, 2)
    ]  # fmt: skip
    order = torch.arange(len(loaded[0].train))
    (x, y), = loaded[0].train.batches(order, len(order), epoch=3)  # fmt: skip
    (x2, y2), = loaded[1].train.batches(order, len(order), epoch=3)  # fmt: skip
    assert torch.equal(x, x2) and torch.equal(y, y2)
    plain = every(load_data(config(table, cache="memory", normalize=False), (1, 24, 20)).train)
    assert not torch.allclose(y, plain[1], atol=0.5)  # the points did move
    inside = (y[:, 0] > 5) & (y[:, 0] < 14) & (y[:, 1] > 5) & (y[:, 1] < 18)
    assert int(inside.sum()) > 20
    error = (_centroid(x[inside], 6) - y[inside]).abs()
    assert float(error.max()) <= 0.5, float(error.max())
    assert float(error.max()) < 0.1, float(error.max())  # what it measures today
    flip = config(table, cache="stream", sample_augment=[{"hflip": {"p": 1.0}}], **STORED)
    (_, flipped), = load_data(flip, (1, 60, 52), STATS).train.batches(order, 80, 1)  # fmt: skip
    _, y_mem = every(load_data(config(table, cache="memory", **STORED), (1, 60, 52), STATS).train)
    torch.testing.assert_close(flipped[:, 0], 51 - y_mem[:, 0], rtol=0, atol=1e-4)
    torch.testing.assert_close(flipped[:, 1], y_mem[:, 1], rtol=0, atol=1e-4)


def test_a_streamed_points_run_resumes_to_the_uninterrupted_one(tmp_path, table):
    """Per-image and batched augmentations that move the points, stopped as epoch 2 starts
    and resumed: the uninterrupted run's weights, bit for bit."""
    from cnnkit.train.checkpoint import load_checkpoint
    from cnnkit.train.experiment import train_run
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe
    from tests.clitools import run_cli
    from tests.test_run_reload import StopAt

    recipe = tmp_path / "points.yaml"
    recipe.write_text(
        "input: [1, 20, 16]\nmodel:\n  layers:\n    - {conv: {out: 4, k: 3}}\n    - relu\n"
        "    - maxpool: 2\n    - flatten\n    - {linear: 2}\n"
        f"data:\n  name: csv\n  path: {table}\n  task: regress\n  targets: [x, y]\n"
        "  target_kind: points\n  cache: stream\n  workers: 0\n  resize: [24, 20]\n"
        "  sample_augment: [random_resized_crop, hflip]\n  augment: [alexnet_crop]\n"
        "train:\n  epochs: 3\n  batch_size: 16\n  optimizer: adam\n  lr: 0.003\n"
        "  monitor: val_loss\n  device: cpu\n"
    )
    ref = run_cli("train", str(recipe), "--out", str(tmp_path / "ref"), "--json")
    assert ref.code == 0, ref.err
    with pytest.raises(KeyboardInterrupt):
        train_run(plan_from_recipe(load_with_overrides(recipe), "test"), out=tmp_path / "run",
                  reporter=StopAt(2))  # fmt: skip
    again = run_cli("train", "--resume", str(tmp_path / "run"), "--json")
    assert again.code == 0, again.err
    a, b = (load_checkpoint(tmp_path / r / "last.pt")["model"] for r in ("ref", "run"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
