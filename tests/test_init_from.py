"""``--init-from``, ``--freeze``, ``--allow-partial``: a run starts from weights saved elsewhere.

Oracles: the tensors of the file itself (torch.equal after loading), a fresh build of the same
recipe (the re-initialised head), torch's own ``requires_grad``/running statistics, and a
from-scratch run of the same budget for the fine-tuning claim.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.model.build import build
from cnnkit.recipe import load_recipe
from cnnkit.reports.train import train_summary
from cnnkit.train.init_from import apply_init
from tests.clitools import run_cli

MODEL = """\
input: [1, 8, 8]
model:
  seed: {seed}
  layers:
    - {{conv: {{out: 16, k: 3, padding: 1}}, name: c1}}
    - {{bn: {{}}, name: n1}}
    - relu
    - maxpool: 2
    - {{conv: {{out: 32, k: 3, padding: 1}}, name: c2}}
    - relu
    - maxpool: 2
    - flatten
    - {{linear: {classes}, name: head}}
"""
DATA = """\
data:
  name: npz
  path: {path}
  val: {val}
  test: {test}
train:
  epochs: {epochs}
  batch_size: {batch}
  optimizer: adam
  lr: 0.01
  device: cpu
  monitor: train_loss
"""


def _digits(folder: Path) -> dict[str, Path]:
    """sklearn's 8x8 digits as npz files: set A is every digit in the even-numbered images;
    set B the digits 5-9 (labels 0-4) of the odd-numbered ones, never seen by A, with a small
    training split (8 per class) and the rest as its test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32)[:, None], digits.target
    files = {
        "a": folder / "a.npz",
        "b_train": folder / "b_train.npz",
        "b_test": folder / "b_test.npz",
    }
    np.savez(files["a"], x=x[0::2], y=y[0::2])
    xb, yb = x[1::2][y[1::2] >= 5], y[1::2][y[1::2] >= 5] - 5
    first = np.concatenate([np.flatnonzero(yb == c)[:8] for c in range(5)])
    rest = np.setdiff1d(np.arange(len(yb)), first)
    np.savez(files["b_train"], x=xb[first], y=yb[first])
    np.savez(files["b_test"], x=xb[rest], y=yb[rest])
    return files


def _recipe(folder: Path, name: str, classes: int, data: str, seed: int = 0, **train) -> Path:
    values = {"val": 0.0, "test": 0.0, "epochs": 4, "batch": 32, **train}
    path = folder / f"{name}.yaml"
    text = MODEL.format(seed=seed, classes=classes) + DATA.format(path=data, **values)
    path.write_text(text, encoding="utf-8")
    return path


def _b_path(files: dict[str, Path]) -> str:
    return json.dumps({"train": str(files["b_train"]), "test": str(files["b_test"])})


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("init")
    files = _digits(folder)
    recipe = _recipe(folder, "a", 10, str(files["a"]), epochs=3)
    train_summary(recipe, out=folder / "run_a")
    return folder / "run_a", files


def test_fine_tuning_beats_scratch_with_another_class_count(pretrained, tmp_path):
    run_a, files = pretrained
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=1, batch=8)
    tuned = train_summary(recipe, out=tmp_path / "tuned", overrides=[f"train.init_from={run_a}"])
    scratch = train_summary(recipe, out=tmp_path / "scratch")
    # Five steps on 40 images. Measured: fine-tuned 0.814, from scratch 0.330 on the 409
    # test images of digits 5-9.
    assert tuned["test"]["accuracy"] > scratch["test"]["accuracy"] + 0.25
    record = tuned["init_from"]
    assert record["kind"] == "run" and record["file"].endswith("best.pt")
    assert record["loaded"] == record["tensors"] - 2  # all but the head's weight and bias
    assert [r["key"] for r in record["reinitialised"]] == ["head.weight", "head.bias"]
    assert record["reinitialised"][0] == {
        "key": "head.weight",
        "file": [10, 128],
        "model": [5, 128],
    }
    assert record["missing"] == record["unexpected"] == record["wrong_shape"] == []
    import hashlib

    assert record["sha256"] == hashlib.sha256((run_a / "best.pt").read_bytes()).hexdigest()
    assert json.loads((tmp_path / "tuned" / "summary.json").read_text())["init_from"] == record
    assert "init_from" not in scratch


def _model(folder: Path, classes: int = 5, seed: int = 0) -> torch.nn.Module:
    return build(load_recipe(_recipe(folder, f"m{seed}", classes, "x.npz", seed=seed)))


def test_loaded_tensors_are_the_files_and_the_head_is_a_fresh_build(tmp_path):
    source = _model(tmp_path, classes=6, seed=7).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.items()}}, tmp_path / "w.pth")
    model, fresh = _model(tmp_path), _model(tmp_path).state_dict()
    record = apply_init(model, str(tmp_path / "w.pth"), partial=False)
    assert record["kind"] == "state_dict"  # a {"state_dict": ...} wrapper, DDP's prefix stripped
    for key, tensor in model.state_dict().items():
        expected = fresh[key] if key.startswith("head.") else source[key]
        assert torch.equal(tensor, expected), key
    assert not torch.equal(fresh["c1.weight"], source["c1.weight"])  # the test can fail


def test_a_mismatch_is_one_line_and_allow_partial_loads_the_rest(pretrained, tmp_path):
    run_a, files = pretrained
    state = _model(tmp_path, classes=5).state_dict()
    state["c2.weight"] = torch.zeros(8, 16, 3, 3)
    state["extra.weight"] = torch.zeros(3)
    del state["n1.bias"]
    torch.save(state, tmp_path / "bad.pt")
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=1)
    bad = run_cli(
        "train", str(recipe), "--init-from", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "r")
    )
    assert bad.code == 2 and bad.err.count("\n") == 1, bad.err
    for part in ("1 missing (n1.bias)", "1 unexpected (extra.weight)", "c2.weight [8, 16, 3, 3]"):
        assert part in bad.err
    assert not (tmp_path / "r").exists()  # refused before the run folder is made
    ok = run_cli(
        "train", str(recipe), "--init-from", str(tmp_path / "bad.pt"), "--allow-partial",
        "-o", str(tmp_path / "r"), "--json", "--freeze", "c1",
    )  # fmt: skip
    assert ok.code == 0, ok.err
    record = json.loads(ok.out)["init_from"]
    assert record["missing"] == ["n1.bias"] and record["unexpected"] == ["extra.weight"]
    assert record["wrong_shape"] == [
        {"key": "c2.weight", "file": [8, 16, 3, 3], "model": [32, 16, 3, 3]}
    ]
    assert record["loaded"] == record["tensors"] - 2
    assert "--allow-partial skipped 1 missing, 1 unexpected, 1 wrong-shape" in ok.err
    assert "frozen: 160 parameters in 2 tensors (under c1)" in ok.err  # 16 x 1 x 3 x 3 + 16


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda p: torch.save({"w": torch.ones(1), "f": os.getcwd}, p), "refused: holds code"),
        (lambda p: torch.save({"epoch": 3}, p), "not a state_dict"),
        (lambda p: None, "no such file, run folder"),
    ],
)
def test_bad_sources_are_one_line(pretrained, tmp_path, content, message):
    _, files = pretrained
    source = tmp_path / "w.pt"
    content(source)
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=1)
    result = run_cli("train", str(recipe), "--init-from", str(source), "-o", str(tmp_path / "r"))
    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err, result.err


def test_safetensors_files_load(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    source = _model(tmp_path, classes=5, seed=3).state_dict()
    save_file({k: v.contiguous() for k, v in source.items()}, str(tmp_path / "w.safetensors"))
    model = _model(tmp_path)
    record = apply_init(model, str(tmp_path / "w.safetensors"), partial=False)
    assert record["kind"] == "safetensors" and record["loaded"] == len(source)
    assert all(torch.equal(t, source[k]) for k, t in model.state_dict().items())


def test_freeze_keeps_the_prefix_and_its_batch_norm_statistics(pretrained, tmp_path):
    run_a, files = pretrained
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=1, batch=8)
    out = tmp_path / "frozen"
    summary = train_summary(
        recipe,
        out=out,
        overrides=[f"train.init_from={run_a}", "train.freeze=[c1, n1]", "train.weight_decay=0.5"],
    )
    before = torch.load(run_a / "best.pt", weights_only=True)["model"]
    after = torch.load(out / "last.pt", weights_only=True)["model"]
    for key in (
        "c1.weight",
        "c1.bias",
        "n1.weight",
        "n1.bias",
        "n1.running_mean",
        "n1.running_var",
    ):
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["c2.weight"], after["c2.weight"])  # the rest trained
    frozen = 16 * 9 + 16 + 16 + 16
    assert summary["frozen"] == {"prefixes": ["c1", "n1"], "tensors": 4, "params": frozen}
    assert summary["params_trainable"] == summary["params"] - frozen
    assert summary["init_from"]["frozen"] == ["c1", "n1"]


def test_unknown_freeze_prefix_suggests_the_nearest(tmp_path):
    recipe = _recipe(tmp_path, "s", 10, "unused.npz")
    result = run_cli("train", str(recipe), "--freeze", "c22", "--set", "data.name=synthetic",
                     "-o", str(tmp_path / "r"))  # fmt: skip
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "'c22' matches no state_dict key (did you mean 'c2'?)" in result.err


def test_freeze_matches_layer_scale_by_its_state_dict_key():
    from cnnkit.train.freeze import freeze

    model = build(load_recipe("convnext_tiny"))
    keys = [k for k in model.state_dict() if not k.endswith(("weight", "bias"))]
    scale = next(k for k in keys if "running" not in k)  # layer scale: keyed by its own layer
    param_names = [n for n, _ in model.named_parameters()]
    assert scale not in param_names and any(n.startswith(scale + ".") for n in param_names)
    freeze(model, [scale], "convnext_tiny")
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    assert [n for n, g in grads.items() if not g] == [n for n in param_names if n.startswith(scale)]


def test_resume_does_not_reload_the_init_weights(pretrained, tmp_path):
    run_a, files = pretrained
    source = tmp_path / "init.pt"
    source.write_bytes((run_a / "best.pt").read_bytes())
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=2, batch=8)
    init = [f"train.init_from={source}"]
    train_summary(recipe, out=tmp_path / "whole", overrides=init)
    train_summary(recipe, out=tmp_path / "half", overrides=[*init, "train.epochs=1"])
    first = json.loads((tmp_path / "half" / "summary.json").read_text())["init_from"]
    source.unlink()  # resume must not need it: the run's last.pt wins
    resumed = train_summary(resume=tmp_path / "half", overrides=["train.epochs=2"])
    assert resumed["init_from"] == first
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    half = torch.load(tmp_path / "half" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], half[k]) for k in whole)
    result = run_cli("train", "--resume", str(tmp_path / "half"), "--init-from", str(run_a))
    assert result.code == 2 and result.err.count("\n") == 1 and "--resume" in result.err


def test_a_name_without_its_library_is_one_line(pretrained, tmp_path):
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed: tests/oracle/test_init_from.py covers names")
    except ImportError:
        pass
    _, files = pretrained
    recipe = _recipe(tmp_path, "b", 5, _b_path(files), epochs=1)
    result = run_cli(
        "train", str(recipe), "--init-from", "torchvision:resnet18", "-o", str(tmp_path / "r")
    )
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert "needs torchvision; run: pip install 'cnnkit[vision]'" in result.err
