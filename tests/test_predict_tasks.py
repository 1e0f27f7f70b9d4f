"""``cnnkit predict`` for regression, segmentation and text, each against ``cnnkit eval`` on the
same inputs and an oracle that prepares the inputs itself (PIL/NumPy, or a regex and the run's
vocab.json) and runs the checkpoint's model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cnnkit.model.build import build
from cnnkit.recipe import recipe_from_text
from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli


def _model(checkpoint: Path) -> tuple[torch.nn.Module, dict]:
    saved = load_checkpoint(checkpoint)
    model = build(recipe_from_text(saved["recipe"], "oracle")).eval()
    model.load_state_dict(saved["model"])
    return model, saved


def _pixels(files: list[Path], mode: str, saved: dict) -> torch.Tensor:
    """The images as the oracle reads them: no resize needed (already the input size)."""
    arrays = [np.asarray(Image.open(f).convert(mode), dtype=np.float32) / 255 for f in files]
    x = torch.from_numpy(np.stack(arrays))
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)
    mean, std = torch.tensor(saved["mean"]), torch.tensor(saved["std"])
    return (x - mean[None, :, None, None]) / std[None, :, None, None]


def test_regression_values_match_the_oracle_and_give_eval_s_mse(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        level = int(rng.integers(0, 256))
        pixels = np.clip(level + rng.integers(-30, 31, (8, 8)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        rows.append({"path": f"{i}.png", "t": level / 255, "u": 1 - level / 255})
    table = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "input: [1, 8, 8]\nmodel:\n  layers: [flatten, {linear: 2}]\n"
        f"data: {{name: csv, path: {table}, task: regress, targets: [t, u], val: 0}}\n"
        "train: {epochs: 2, batch_size: 8, lr: 0.01, device: cpu}\n"
    )
    assert run_cli("train", str(recipe), "--out", str(tmp_path / "run")).code == 0
    r = run_cli("predict", str(tmp_path / "run"), str(table), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["task"] == "regress" and report["targets"] == ["t", "u"]
    model, saved = _model(tmp_path / "run/best.pt")
    files = [tmp_path / row["path"] for row in rows]
    with torch.no_grad():
        expected = model(_pixels(files, "L", saved)).double().numpy()
    got = np.array([p["values"] for p in report["predictions"]])
    assert got == pytest.approx(expected, abs=1e-5)
    scored = run_cli("eval", str(tmp_path / "run"), "--data", f"csv:{table}", "--json")
    assert scored.code == 0, scored.err
    truth = np.array([[row["t"], row["u"]] for row in rows])
    assert json.loads(scored.out)["mse"] == pytest.approx(((got - truth) ** 2).mean(), rel=1e-5)
    shown = run_cli("predict", str(tmp_path / "run"), str(files[0]))
    assert shown.code == 0 and f"{got[0][0]:.4f}" in shown.out


def _write_pairs(root: Path, n: int = 6) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = rng.integers(0, 3, (10, 12)).astype(np.uint8)
        image = np.stack([mask * 120, 255 - mask * 120, rng.integers(0, 255, (10, 12))], -1)
        Image.fromarray(image.astype(np.uint8)).save(root / f"images/s{i}.png")
        Image.fromarray(mask, mode="L").save(root / f"masks/s{i}.png")
    return root


def test_segmentation_masks_are_the_oracle_s_argmax_and_give_eval_s_confusion(tmp_path):
    root = _write_pairs(tmp_path / "d")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "input: [3, 10, 12]\nmodel:\n  layers: [{conv: {out: 3, k: 3, p: 1}}]\n"
        f"data: {{name: folder, task: segment, path: {root}, classes: 3, val: 0, test: 0.5}}\n"
        "train: {epochs: 1, batch_size: 2, device: cpu}\n"
    )
    assert run_cli("train", str(recipe), "--out", str(tmp_path / "run")).code == 0
    refused = run_cli("predict", str(tmp_path / "run"), str(root / "images"))
    assert refused.code == 2 and "give --out DIR" in refused.err
    out = tmp_path / "masks"
    r = run_cli("predict", str(tmp_path / "run"), str(root / "images"), "--out", str(out), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    files = sorted((root / "images").glob("*.png"))
    model, saved = _model(tmp_path / "run/best.pt")
    with torch.no_grad():
        expected = model(_pixels(files, "RGB", saved)).argmax(1).numpy()
    written = [np.asarray(Image.open(p["mask"])) for p in report["predictions"]]
    assert [Path(p["mask"]).name for p in report["predictions"]] == [f.name for f in files]
    assert Image.open(report["predictions"][0]["mask"]).mode == "L"
    assert np.array_equal(np.stack(written), expected)
    counts = np.bincount(expected[0].ravel(), minlength=3).tolist()
    assert report["predictions"][0]["pixels"] == counts
    truth = np.stack([np.asarray(Image.open(root / "masks" / f.name)) for f in files])
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (truth.ravel(), expected.ravel()), 1)
    scored = run_cli("eval", str(tmp_path / "run"), "--data", f"folder:{root}", "--json")
    assert scored.code == 0, scored.err
    assert json.loads(scored.out)["confusion"] == confusion.tolist()


TEXT_RECIPE = """\
input: [12]
model:
  layers:
    - {embedding: {vocab: 50, dim: 8, padding_idx: 0}, name: embedding}
    - {conv: {out: 8, k: 3}, name: conv}
    - relu
    - global_maxpool
    - {linear: 2, name: fc}
train: {epochs: 3, device: cpu, lr: 0.01}
"""


def test_text_predictions_match_the_oracle_s_encoding_and_eval(tmp_path):
    rng = np.random.default_rng(0)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "dull"]}
    rows = [
        (f"the film was {rng.choice(words[label])} and {rng.choice(words['pos'])}", label)
        for label in ("pos", "neg")
        for _ in range(20)
    ]
    data = tmp_path / "d.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(data, index=False)
    recipe = tmp_path / "t.yaml"
    recipe.write_text(TEXT_RECIPE + f"data: {{name: text, path: {data}}}\n")
    assert run_cli("train", str(recipe), "--out", str(tmp_path / "run")).code == 0
    lines = tmp_path / "new.txt"
    lines.write_text("\n".join(t for t, _ in rows[::4]) + "\n")
    sentence = "The film was GOOD, unseen-word!"
    r = run_cli("predict", str(tmp_path / "run"), sentence, str(lines), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    texts = [sentence, *(t for t, _ in rows[::4])]
    assert [p["input"] for p in report["predictions"]] == texts
    vocab = json.loads((tmp_path / "run/vocab.json").read_text())
    index = {w: i for i, w in enumerate(vocab)}
    ids = torch.zeros(len(texts), 12, dtype=torch.int64)
    for row, text in enumerate(texts):
        tokens = [index.get(w, 1) for w in re.findall(r"[a-z0-9']+", text.lower())][:12]
        ids[row, : len(tokens)] = torch.tensor(tokens)
    model, saved = _model(tmp_path / "run/best.pt")
    with torch.no_grad():
        probs = torch.softmax(model(ids).double(), 1)
    for row, expected in zip(report["predictions"], probs):
        got = {t["class"]: t["probability"] for t in row["top"]}
        assert [got[c] for c in saved["classes"]] == pytest.approx(expected.tolist(), abs=1e-6)
    new = tmp_path / "new.csv"
    pd.DataFrame(rows[::4], columns=["text", "label"]).to_csv(new, index=False)
    scored = run_cli("eval", str(tmp_path / "run"), "--data", f"text:{new}", "--json")
    by_csv = run_cli("predict", str(tmp_path / "run"), str(new), "--json")
    predicted = [p["class"] for p in json.loads(by_csv.out)["predictions"]]
    accuracy = np.mean([p == label for p, (_, label) in zip(predicted, rows[::4])])
    assert json.loads(scored.out)["accuracy"] == pytest.approx(accuracy)
    exported = run_cli(
        "export", str(tmp_path / "run"), "--format", "torchscript", "--out", str(tmp_path / "t.pt")
    )
    assert exported.code == 0 and "parity passed" in exported.out, exported.err
    files = {"cnnkit.json": ""}
    torch.jit.load(str(tmp_path / "t.pt"), _extra_files=files)
    stored = json.loads(files["cnnkit.json"])
    assert stored["input_dtype"] == "int64" and stored["preprocessing"]["vocab"] == vocab
    assert torch.equal(torch.jit.load(str(tmp_path / "t.pt"))(ids), model(ids))
