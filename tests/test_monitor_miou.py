"""train.monitor: val_miou picks best.pt and early stopping by the val split's mean IoU
(segmentation only): the per-epoch mIoU against scikit-learn, best epoch = argmax of the
history's val_miou, and one-line refusals for classification and regression."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from cnnkit.train.config import TrainConfig
from cnnkit.train.data import Split
from cnnkit.train.data.segment import IGNORE
from cnnkit.train.evaluate import evaluate
from cnnkit.train.loop import TrainState, record
from tests.clitools import run_cli
from tests.trainkit import summary, tiny_recipe

SEGMENT = """\
input: [3, 12, 12]
model:
  layers:
    - {conv: {out: 8, k: 3, p: 1}}
    - relu
    - {conv: {out: 8, k: 3, p: 1}}
    - relu
    - {conv: {out: 4, k: 1}}
data: {name: shapes, task: segment, samples: 80, val: 0.25}
train: {epochs: 5, batch_size: 16, optimizer: adam, lr: 0.02, monitor: val_miou, device: cpu}
"""


@pytest.mark.parametrize("seed", range(4))
def test_val_miou_is_sklearn_macro_jaccard_on_scored_pixels(seed):
    """evaluate()'s mIoU over batches (one batch size that splits the set unevenly) equals
    jaccard_score(average="macro") over the scored pixels, classes in truth or predictions."""
    g = torch.Generator().manual_seed(seed)
    k = 5
    y = torch.randint(0, k - 1, (9, 6, 7), generator=g)  # class 4 never true: maybe predicted
    y[torch.rand(y.shape, generator=g) < 0.1] = IGNORE
    model = torch.nn.Conv2d(2, k, 3, padding=1)
    torch.manual_seed(seed)
    x = torch.randn(9, 2, 6, 7)
    result = evaluate(model, Split(x, y), "segment", batch_size=4)
    with torch.no_grad():
        pred = model(x).argmax(1)
    scored = y != IGNORE
    truth, guess = y[scored].numpy(), pred[scored].numpy()
    want = jaccard_score(truth, guess, average="macro", zero_division=0)
    assert result["miou"] == pytest.approx(want, abs=1e-12)
    assert result["accuracy"] == pytest.approx(float(np.mean(truth == guess)), abs=1e-12)


def test_record_follows_val_miou_up_not_loss_or_accuracy():
    """Higher mIoU is better; the loss and pixel accuracy peaking elsewhere do not matter."""
    c, state = TrainConfig(epochs=4, monitor="val_miou", early_stop=2), TrainState()
    rows = [(0.9, 0.50, 0.30), (0.5, 0.80, 0.60), (0.4, 0.90, 0.55), (0.3, 0.95, 0.50)]
    stops = []
    for epoch, (loss, accuracy, miou) in enumerate(rows, 1):
        row = {"epoch": epoch, "train_loss": loss, "val_loss": loss}
        row.update(val_accuracy=accuracy, val_miou=miou)
        stops.append(record(state, row, c)[1])
    assert (state.monitor, state.best_epoch, state.best_value) == ("val_miou", 2, 0.60)
    assert stops == [False, False, False, True]  # two epochs without a better mIoU


def test_segment_run_keeps_best_pt_at_the_best_val_miou(tmp_path):
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(SEGMENT)
    run = tmp_path / "run"
    r = run_cli("train", str(recipe), "--out", str(run), "--json")
    assert r.code == 0, r.err
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    miou = [float(row["val_miou"]) for row in rows]
    best = summary(run)["best"]
    assert best["metric"] == "val_miou" and best["epoch"] == int(np.argmax(miou)) + 1
    assert best["value"] == pytest.approx(max(miou))
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] == best["epoch"]
    e = run_cli("eval", str(run), "--split", "val", "--json")  # best.pt's mIoU, re-scored
    assert e.code == 0, e.err
    assert json.loads(e.out)["miou"] == pytest.approx(max(miou), abs=1e-9)


@pytest.mark.parametrize("task", ["classify", "regress"])
def test_val_miou_is_refused_without_masks(tmp_path, task):
    extra = f"data: {{name: synthetic, samples: 40, task: {task}}}\n"
    recipe = tiny_recipe(tmp_path, extra=extra + "train: {monitor: val_miou, device: cpu}\n")
    if task == "regress":
        recipe.write_text(recipe.read_text().replace("linear: 10", "linear: 1"))
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "r"))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "train.monitor" in r.err and "val_miou" in r.err and "tiny.yaml" in r.err
    assert not (tmp_path / "r").exists()
    checked = run_cli("recipes", str(recipe))  # validating the recipe says the same
    assert checked.code == 2 and "train.monitor" in checked.err, checked.err
