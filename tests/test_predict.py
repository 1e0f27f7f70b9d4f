"""``cnnkit predict`` against ``cnnkit eval`` and against an oracle that reads the files itself.

The oracle decodes each PNG with PIL, resizes it as the run's ``data.resize`` says, crops the
centre, normalises with the checkpoint's statistics and runs the checkpoint's model: no cnnkit
data code is on its path. Eval scores the same files (``--data folder:DIR``); predict's classes
must give eval's accuracy and confusion matrix, file by file the oracle's probabilities.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cnnkit.model.build import build
from cnnkit.recipe import recipe_from_text
from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli

LEVELS = {"a": 30, "b": 128, "c": 220}  # each class a brightness, with noise that overlaps
RECIPE = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - maxpool: 2
    - flatten
    - {linear: 3, name: fc}
data:
  name: folder
  path: {train: TRAIN, test: TEST}
  val: 0
  resize: [10, 10]
  normalize: true
train: {epochs: 2, batch_size: 8, lr: 0.05, device: cpu, monitor: train_loss}
"""


def _write(root: Path, n: int, rng: np.random.Generator, noise: int = 90) -> Path:
    from PIL import Image

    for name, level in LEVELS.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(level + rng.integers(-noise, noise + 1, (12, 12)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    train, test = _write(root / "train", 8, rng), _write(root / "test", 6, rng)
    recipe = root / "r.yaml"
    recipe.write_text(RECIPE.replace("TRAIN", str(train)).replace("TEST", str(test)))
    r = run_cli("train", str(recipe), "--out", str(root / "run"), "--json")
    assert r.code == 0, r.err
    return root


def _oracle(checkpoint: Path, files: list[Path]) -> np.ndarray:
    """Softmax probabilities, preprocessing done here with PIL and NumPy only."""
    from PIL import Image

    saved = load_checkpoint(checkpoint)
    model = build(recipe_from_text(saved["recipe"], "oracle")).eval()
    model.load_state_dict(saved["model"])
    images = []
    for f in files:
        with Image.open(f) as image:
            small = image.convert("L").resize((10, 10), Image.Resampling.BILINEAR)
        images.append(np.asarray(small, dtype=np.float32)[1:9, 1:9] / 255)  # centre 8x8
    x = (torch.from_numpy(np.stack(images))[:, None] - saved["mean"][0]) / saved["std"][0]
    with torch.no_grad():
        return torch.softmax(model(x).double(), 1).numpy()


def test_predict_agrees_with_eval_and_with_the_oracle_file_by_file(run):
    test = run / "test"
    r = run_cli("predict", str(run / "run"), str(test), "--top-k", "3", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    files = sorted(test.rglob("*.png"))
    assert [p["input"] for p in report["predictions"]] == [str(f) for f in files]
    probs = _oracle(run / "run/best.pt", files)
    classes = ["a", "b", "c"]
    for row, expected in zip(report["predictions"], probs):
        got = {t["class"]: t["probability"] for t in row["top"]}
        assert [got[c] for c in classes] == pytest.approx(expected.tolist(), abs=1e-6)
        assert row["class"] == classes[int(expected.argmax())]
    truth = [f.parent.name for f in files]
    predicted = [p["class"] for p in report["predictions"]]
    assert len(set(predicted)) > 1 and predicted != truth  # noisy enough to be a real check
    evaluated = run_cli("eval", str(run / "run"), "--data", f"folder:{test}", "--json")
    assert evaluated.code == 0, evaluated.err
    scores = json.loads(evaluated.out)
    assert scores["accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.array(truth)))
    confusion = np.zeros((3, 3), dtype=int)
    for t, p in zip(truth, predicted):
        confusion[classes.index(t), classes.index(p)] += 1
    assert scores["confusion"] == confusion.tolist()


def test_a_csv_of_paths_single_files_and_batches_give_the_same_answers(run):
    files = sorted((run / "test").rglob("*.png"))
    table = run / "files.csv"
    pd.DataFrame({"path": [str(f.relative_to(run)) for f in files]}).to_csv(table, index=False)
    by_folder = run_cli("predict", str(run / "run"), str(run / "test"), "--csv")
    by_csv = run_cli("predict", str(run / "run/best.pt"), str(table), "--csv", "--batch-size", "1")
    assert by_folder.code == 0 and by_csv.code == 0, by_folder.err + by_csv.err
    a, b = pd.read_csv(io.StringIO(by_folder.out)), pd.read_csv(io.StringIO(by_csv.out))
    ranks = [f"{k}_{i}" for i in (1, 2, 3) for k in ("class", "probability")]
    assert list(a.columns) == ["input", *ranks]
    assert (a["class_1"] == b["class_1"]).all()
    assert np.allclose(a["probability_1"], b["probability_1"], atol=1e-6)
    one = run_cli("predict", str(run / "run"), str(files[0]), "--top-k", "2")
    assert one.code == 0 and "class_2" in one.out and "class_3" not in one.out
    row = one.out.splitlines()[4]
    assert str(files[0]) in row and f" {a.loc[0, 'class_1']} " in row


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nowhere.png"], "nowhere.png: no such image file or folder"),
        (["files.csv"], "files.csv: no such CSV file"),
        (["--batch-size", "0", "x.png"], "--batch-size"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(run, args, says, monkeypatch):
    monkeypatch.chdir(run / "test")
    r = run_cli("predict", str(run / "run"), *args)
    assert r.code == 2 and says in r.err and len(r.err.splitlines()) == 1, r.err


def test_a_folder_without_images_and_a_folder_that_is_no_run(run, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("predict", str(run / "run"), str(tmp_path / "empty"))
    assert r.code == 2 and "no images" in r.err, r.err
    r = run_cli("predict", str(tmp_path / "empty"), str(run / "test"))
    assert r.code == 2 and "no best.pt or last.pt" in r.err, r.err
