"""Scores on given splits and on other data, against sklearn.metrics on the true labels.

The oracle reads the images itself (PIL / NumPy), normalises them with the checkpoint's
statistics, runs the checkpoint's model and scores its predictions by class name with
``sklearn.metrics.accuracy_score``: no cnnkit data code is on the oracle's path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from cnnkit.model.build import build
from cnnkit.recipe import recipe_from_text
from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli
from tests.test_data_sources import write_idx
from tests.trainkit import TINY_MODEL

LEVELS = {"a": 30, "b": 128, "c": 220}  # each class is a brightness: easy to learn


def _class_images(n: int, level: int, rng: np.random.Generator, size: int = 8) -> np.ndarray:
    noise = rng.integers(-20, 21, (n, size, size))
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def _write_folder(root: Path, counts: dict[str, int], rng: np.random.Generator) -> Path:
    from PIL import Image

    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(_class_images(n, LEVELS[name], rng)):
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


def _recipe(folder: Path, data: str, outputs: int = 3) -> Path:
    model = TINY_MODEL.replace("{linear: 10, name: fc}", f"{{linear: {outputs}, name: fc}}")
    train = "train:\n  epochs: 6\n  batch_size: 8\n  lr: 0.05\n  device: cpu\n"
    path = folder / "r.yaml"
    path.write_text(model + data + train + "  monitor: train_loss\n")
    return path


def _predict(checkpoint: Path, images: np.ndarray) -> list[str]:
    """Class names the checkpoint's model predicts for uint8 images [N, H, W] (its input size)."""
    saved = load_checkpoint(checkpoint)
    model = build(recipe_from_text(saved["recipe"], "oracle")).eval()
    model.load_state_dict(saved["model"])
    x = torch.from_numpy(images.astype(np.float32) / 255)[:, None]
    x = (x - saved["mean"][0]) / saved["std"][0]
    with torch.no_grad():
        return [saved["classes"][i] for i in model(x).argmax(1).tolist()]


def _folder_truth(root: Path) -> tuple[list[str], np.ndarray]:
    from PIL import Image

    files = sorted(root.glob("*/*.png"))
    return [f.parent.name for f in files], np.stack([np.asarray(Image.open(f)) for f in files])


def test_a_test_split_lacking_a_class_is_scored_on_its_true_labels(tmp_path):
    rng = np.random.default_rng(0)
    train = _write_folder(tmp_path / "train", {"a": 12, "b": 12, "c": 12}, rng)
    test = _write_folder(tmp_path / "test", {"b": 6, "c": 6}, rng)
    data = f"data:\n  name: folder\n  path: {{train: {train}, test: {test}}}\n  val: 0\n"
    r = run_cli("train", str(_recipe(tmp_path, data)), "--out", str(tmp_path / "run"), "--json")
    assert r.code == 0, r.err
    truth, images = _folder_truth(test)
    expected = accuracy_score(truth, _predict(tmp_path / "run/best.pt", images))
    assert json.loads(r.out)["test"]["accuracy"] == pytest.approx(expected)
    evaluated = run_cli("eval", str(tmp_path / "run"), "--json")
    assert evaluated.code == 0, evaluated.err
    assert json.loads(evaluated.out)["accuracy"] == pytest.approx(expected)


# ---- eval --data takes the data overrides it needs ----


def _labelled(n: int, rng: np.random.Generator, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of classes 0, 1, 2 (dark, mid, bright), class-sorted."""
    y = np.repeat(np.arange(3), n // 3)
    levels = list(LEVELS.values())
    return np.concatenate([_class_images(n // 3, levels[c], rng, size) for c in range(3)]), y


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    x, y = _labelled(36, np.random.default_rng(1))
    np.savez(root / "train.npz", x=x, y=y)
    recipe = _recipe(root, f"data:\n  name: npz\n  path: {root / 'train.npz'}\n  val: 0\n")
    r = run_cli("train", str(recipe), "--out", str(root / "run"), "--json")
    assert r.code == 0, r.err
    return root / "run"


def test_eval_data_resizes_with_set(run, tmp_path):
    x, y = _labelled(12, np.random.default_rng(2), size=10)
    np.savez(tmp_path / "big.npz", x=x, y=y)
    spec = f"npz:{tmp_path / 'big.npz'}"
    refused = run_cli("eval", str(run), "--data", spec)
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert "--set data.resize=[8,8]" in refused.err  # advice eval can follow
    r = run_cli("eval", str(run), "--data", spec, "--set", "data.resize=[8,8]", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    small = torch.nn.functional.interpolate(
        torch.from_numpy(x.astype(np.float32))[:, None],
        size=(8, 8),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[:, 0].numpy()
    expected = accuracy_score([str(v) for v in y], _predict(run / "best.pt", small))
    assert (report["split"], report["samples"]) == ("all", 12)
    assert report["accuracy"] == pytest.approx(expected)


def test_eval_set_takes_data_keys_only(run):
    r = run_cli("eval", str(run), "--set", "train.lr=0.1")
    assert r.code == 2 and r.err.count("\n") == 1 and "data.KEY=VALUE" in r.err
    r = run_cli("eval", str(run), "--set", "data.resize=[4,4]")
    assert r.code == 2 and "data.resize [4, 4] is smaller than the recipe input 8x8" in r.err


def test_eval_data_idx_scores_the_t10k_pair(run, tmp_path):
    rng = np.random.default_rng(3)
    (x_train, y_train), (x_test, y_test) = _labelled(30, rng), _labelled(12, rng)
    write_idx(tmp_path / "train-images-idx3-ubyte", x_train)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y_train)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x_test)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y_test)
    for split, (x, y) in (("test", (x_test, y_test)), ("train", (x_train, y_train))):
        r = run_cli("eval", str(run), "--data", f"idx:{tmp_path}", "--split", split, "--json")
        assert r.code == 0, r.err
        report = json.loads(r.out)
        expected = accuracy_score([str(v) for v in y], _predict(run / "best.pt", x))
        assert (report["split"], report["samples"]) == (split, len(y))
        assert report["accuracy"] == pytest.approx(expected)
