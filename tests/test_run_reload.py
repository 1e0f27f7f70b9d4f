"""A saved run always reloads: every data:/train: option and every augmentation, taken from the
schema, goes through train (killed after epoch 1) -> resume -> eval, and eval reproduces the
test metrics the run recorded. A new option without a sample value here fails its case."""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cnnkit.train.config import AUGMENTS, DATA_SOURCES, DataConfig, TrainConfig
from cnnkit.train.data.augment import AUGMENTS as AUGMENT_FUNCTIONS
from cnnkit.train.experiment import train_run
from cnnkit.train.loop import Silent
from cnnkit.train.plan import load_with_overrides, plan_from_recipe
from tests.clitools import run_cli
from tests.trainkit import TINY_MODEL

BASE_DATA = {"name": "synthetic", "samples": 120, "classes": 10}
BASE_TRAIN = {"epochs": 2, "batch_size": 32, "device": "cpu"}

# One non-default value per source (data.name), with whatever else that source needs.
SOURCES = {
    "digits": {"name": "digits", "limit": 150},
    "synthetic": {"name": "synthetic", "samples": 80},
    "folder": {"name": "folder", "path": "{files}/folder"},
    "csv": {"name": "csv", "path": "{files}/pixels.csv"},
    "npz": {"name": "npz", "path": "{files}/all.npz"},
    "idx": {"name": "idx", "path": "{files}/idx"},
    "shapes": {"name": "shapes", "task": "segment", "samples": 40, "classes": 3},
    "text": {"name": "text", "path": "{files}/text.csv"},
    "sentiment": {"name": "sentiment", "samples": 80},
    "waves": {"name": "waves", "samples": 80},
    "dots": {"name": "dots", "task": "regress", "samples": 80},
}

# One non-default value per data: key (a mapping of keys when the value needs company).
DATA = {
    "path": {"name": "npz", "path": {"train": "{files}/train.npz", "test": "{files}/test.npz"}},
    "task": {"task": "regress"},
    "val": {"val": 0.25},
    "test": {"test": 0.3},
    "seed": {"seed": 3},
    "resize": {"resize": [10, 10]},
    "normalize": {"normalize": False},
    "label_column": {"name": "csv", "path": "{files}/digit.csv", "label_column": "digit"},
    "path_column": {"name": "csv", "path": "{files}/files.csv", "path_column": "file"},
    "targets": {"name": "csv", "path": "{files}/targets.csv", "task": "regress", "targets": ["t"]},
    "classes": {"classes": 4},
    "samples": {"samples": 90},
    "limit": {"limit": 70},
    "stratify": {"stratify": True},
    "augment_keeps_targets": {
        "task": "regress",
        "augment": ["hflip"],
        "augment_keeps_targets": True,
    },
    "ignore_index": {
        "name": "folder",
        "path": "{files}/pairs",
        "task": "segment",
        "classes": 3,
        "ignore_index": 9,
        "augment": [{"random_crop": {"padding": 1}}],
    },
    "text_column": {"name": "text", "path": "{files}/sentence.csv", "text_column": "sentence"},
    "vocab_size": {"name": "sentiment", "samples": 80, "vocab_size": 20},
    "min_freq": {"name": "sentiment", "samples": 80, "min_freq": 3},
    "lowercase": {"name": "text", "path": "{files}/text.csv", "lowercase": False},
    "token_pattern": {"name": "sentiment", "samples": 80, "token_pattern": "[a-z]+"},
    "target_kind": {
        "name": "dots",
        "task": "regress",
        "samples": 80,
        "target_kind": "points",
        "augment": ["hflip", {"random_crop": {"padding": 1}}],
    },
    "cache": {"name": "folder", "path": "{files}/folder", "cache": "stream"},
    "memory_budget": {"name": "folder", "path": "{files}/folder", "memory_budget": 1},
    "workers": {"name": "folder", "path": "{files}/folder", "cache": "stream", "workers": 1},
    "sample_augment": {
        "name": "folder",
        "path": "{files}/folder",
        "cache": "stream",
        "sample_augment": ["random_resized_crop", "hflip", "colour_jitter"],
    },
}

# task: segment scores every pixel: a conv with one output channel per class, no flatten.
SEGMENT_MODEL = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3, p: 1}, name: c1}
    - relu
    - {conv: {out: CLASSES, k: 1}, name: out}
"""

# Text sources train an embedding recipe (input [L]), waves a conv1d one (input [C, L]).
TEXT_MODEL = """\
input: [10]
model:
  layers:
    - {embedding: {vocab: 64, dim: 4, padding_idx: 0}, name: embedding}
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - global_maxpool
    - {dropout: 0.1, name: drop}
    - {linear: 2, name: fc}
"""
WAVES_MODEL = """\
input: [1, 16]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - global_maxpool
    - {dropout: 0.1, name: drop}
    - {linear: 3, name: fc}
"""

TRAIN = {
    "epochs": {"epochs": 3},
    "batch_size": {"batch_size": 16},
    "eval_batch_size": {"eval_batch_size": 7},
    "seed": {"seed": 5},
    "optimizer": {"optimizer": "adamw"},
    "lr": {"lr": 0.01},
    "momentum": {"momentum": 0.5},
    "nesterov": {"nesterov": True},
    "weight_decay": {"weight_decay": 0.0005},
    "betas": {"optimizer": "adam", "betas": [0.8, 0.99]},
    "scheduler": {"scheduler": "onecycle"},
    "step_size": {"scheduler": "step", "step_size": 1},
    "gamma": {"scheduler": "step", "gamma": 0.5},
    "warmup_epochs": {"warmup_epochs": 0.5},
    "min_lr": {"scheduler": "cosine", "min_lr": 0.001},
    "label_smoothing": {"label_smoothing": 0.1},
    "clip_grad_norm": {"clip_grad_norm": 1.0},
    "early_stop": {"early_stop": 2},
    "monitor": {"monitor": "val_loss"},
    "device": {"device": "cpu"},
    "amp": {"amp": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "mixup": {"mixup": 0.4},
    "cutmix": {"cutmix": 1.0},
    "mix_prob": {"mixup": 0.4, "mix_prob": 0.5},
    "mix_switch_prob": {"mixup": 0.4, "cutmix": 1.0, "mix_switch_prob": 0.8},
    "mix_epochs": {"mixup": 0.4, "mix_epochs": 1},
    "class_weights": {"class_weights": [1, 2, 1, 2, 1, 2, 1, 2, 1, 2]},
    "sampler": {"sampler": "balanced"},
    "sync_bn": {"sync_bn": True},
    "init_from": {"init_from": "{files}/init.pt"},  # c1 only: the head keeps its fresh init
    "init_partial": {"init_from": "{files}/init.pt", "init_partial": True},
    "freeze": {"freeze": ["c1"]},
    "ema": {"ema": 0.9},
    "ema_warmup": {"ema": 0.99, "ema_warmup": True},
    "weight_decay_norm_bias": {"weight_decay": 0.0005, "weight_decay_norm_bias": True},
    "accumulate": {"accumulate": 2},
    "checkpoint_every": {"checkpoint_every": 1},
}

CASES = (
    [pytest.param("data", {"augment": [kind]}, id=f"augment-{kind}") for kind in AUGMENTS]
    + [pytest.param("data", SOURCES.get(s), id=f"source-{s}") for s in DATA_SOURCES]
    + [
        pytest.param("data", DATA.get(f.name), id=f"data-{f.name}")
        for f in fields(DataConfig)
        if f.name not in ("name", "augment")  # covered by every source and every kind above
    ]
    + [pytest.param("train", TRAIN.get(f.name), id=f"train-{f.name}") for f in fields(TrainConfig)]
)


def test_the_augment_tables_agree():
    assert set(AUGMENTS) == set(AUGMENT_FUNCTIONS)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Small files for every source: 60 images 8x8 of 10 classes, sorted by class."""
    from PIL import Image

    from tests.test_data_sources import write_idx

    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 6)
    x = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8)
    np.savez(root / "all.npz", x=x, y=y)
    weights = torch.Generator().manual_seed(0)
    c1 = {"c1.weight": torch.randn(4, 1, 3, 3, generator=weights), "c1.bias": torch.zeros(4)}
    torch.save(c1, root / "init.pt")
    np.savez(root / "train.npz", x=x[::2], y=y[::2])
    np.savez(root / "test.npz", x=x[1::2], y=y[1::2])
    pixels = [f"p{i}" for i in range(64)]
    rows = [",".join(map(str, [label, *image.ravel()])) for label, image in zip(y, x)]
    (root / "pixels.csv").write_text("label," + ",".join(pixels) + "\n" + "\n".join(rows))
    (root / "digit.csv").write_text("digit," + ",".join(pixels) + "\n" + "\n".join(rows))
    targets = [f"{v:.4f},{r.split(',', 1)[1]}" for v, r in zip(x.mean(axis=(1, 2)) / 255, rows)]
    (root / "targets.csv").write_text("t," + ",".join(pixels) + "\n" + "\n".join(targets))
    (root / "idx").mkdir()
    train = np.arange(60) % 3 != 0  # every class in both files
    write_idx(root / "idx/train-images-idx3-ubyte", x[train])
    write_idx(root / "idx/train-labels-idx1-ubyte", y[train])
    write_idx(root / "idx/t10k-images-idx3-ubyte", x[::3])
    write_idx(root / "idx/t10k-labels-idx1-ubyte", y[::3])
    listed = []
    for i, (label, image) in enumerate(zip(y, x)):
        (root / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "folder" / str(label) / f"{i}.png")
        listed.append(f"folder/{label}/{i}.png,{label}")
    (root / "files.csv").write_text("file,label\n" + "\n".join(listed) + "\n")
    (root / "pairs/images").mkdir(parents=True)
    (root / "pairs/masks").mkdir()
    for i, image in enumerate(x[:20]):  # masks: 0-2 by brightness, the brightest pixels ignored
        Image.fromarray(image).save(root / f"pairs/images/{i}.png")
        mask = np.where(image > 240, 9, image // 86).astype(np.uint8)
        Image.fromarray(mask).save(root / f"pairs/masks/{i}.png")
    words = [f"{'Good' if label % 2 else 'bad'} film {i} ok" for i, label in enumerate(y)]
    lines = [f"{w},{'pos' if label % 2 else 'neg'}" for w, label in zip(words, y)]
    (root / "text.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    (root / "sentence.csv").write_text("sentence,label\n" + "\n".join(lines) + "\n")
    return root


class StopAt(Silent):
    """Kills the run as epoch ``epoch`` (0-based) starts, as Ctrl-C or SIGKILL would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_start(self, epoch, epochs, steps):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _filled(value, files: Path):
    if isinstance(value, dict):
        return {k: _filled(v, files) for k, v in value.items()}
    return value.format(files=files) if isinstance(value, str) else value


def _recipe(folder: Path, section: str, sample: dict, files: Path) -> Path:
    data, train = dict(BASE_DATA), dict(BASE_TRAIN)
    (data if section == "data" else train).update(_filled(sample, files))
    regress = data.get("task") == "regress"
    if regress:
        train.setdefault("monitor", "val_loss")
    outputs = 1 if regress else data["classes"] if data["name"] == "synthetic" else 10
    outputs = 2 if data["name"] == "dots" else outputs  # one (x, y) point
    model = TINY_MODEL.replace("{linear: 10, name: fc}", f"{{linear: {outputs}, name: fc}}")
    if data.get("task") == "segment":
        model = SEGMENT_MODEL.replace("CLASSES", str(data.get("classes", 4)))
    model = {"text": TEXT_MODEL, "sentiment": TEXT_MODEL, "waves": WAVES_MODEL}.get(
        data["name"], model
    )
    path = folder / "case.yaml"
    path.write_text(model + yaml.safe_dump({"data": data, "train": train}, sort_keys=False))
    return path


@pytest.mark.parametrize(("section", "sample"), CASES)
def test_every_option_round_trips_train_resume_eval(tmp_path, files, monkeypatch, section, sample):
    assert sample is not None, "add a sample value for this new option to tests/test_run_reload.py"
    # torch.compile's real work (Inductor's C++ build) takes a minute on CPU; the eager backend
    # still wraps the model in the same OptimizedModule, which is what saving must undo.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    recipe = _recipe(tmp_path, section, sample, files)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(
            plan_from_recipe(load_with_overrides(recipe), "test"), out=run, reporter=StopAt(1)
        )

    resumed = run_cli("train", "--resume", str(run), "--json")
    assert resumed.code == 0, resumed.err
    summary = json.loads(resumed.out)
    assert summary["status"] in ("completed", "early_stopped") and summary["epochs"] >= 2
    evaluated = run_cli("eval", str(run), "--json")
    assert evaluated.code == 0, evaluated.err
    report, recorded = json.loads(evaluated.out), summary["test"]
    assert report["samples"] == recorded["samples"]
    keys = {"classify": ("accuracy", "loss"), "segment": ("accuracy", "loss", "miou")}
    for key in keys.get(report["task"], ("mse", "mae")):
        assert report[key] == pytest.approx(recorded[key], rel=1e-5, abs=1e-7), key
