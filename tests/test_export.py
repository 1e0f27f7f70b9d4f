"""``cnnkit export``: each format read back by its own runtime, outside cnnkit.

The oracle loads the exported file with onnxruntime, ``torch.jit.load`` or
``torch.export.load`` itself, runs batches of 1 and 3 (the export saw a batch of 2) and compares
with the checkpoint's model rebuilt from its stored recipe; the metadata read back with
``onnx`` / the loaders' extra files must be the checkpoint's classes and statistics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from cnnkit.model.build import build
from cnnkit.recipe import recipe_from_text
from cnnkit.train.checkpoint import load_checkpoint
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe

ONE_EPOCH = "data: {name: synthetic, samples: 60, classes: 10}\n"
ONE_EPOCH += "train: {epochs: 1, batch_size: 20, device: cpu}\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    r = run_cli("train", str(tiny_recipe(root, ONE_EPOCH)), "--out", str(root / "run"))
    assert r.code == 0, r.err
    return root / "run"


def _model(run: Path) -> tuple[torch.nn.Module, dict]:
    saved = load_checkpoint(run / "best.pt")
    model = build(recipe_from_text(saved["recipe"], "oracle")).eval()
    model.load_state_dict(saved["model"])
    return model, saved


def _runner(fmt: str, path: Path):
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    return torch.export.load(str(path)).module()


def _stored(fmt: str, path: Path) -> dict:
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path))
        props = {p.key: p.value for p in model.metadata_props}
        assert json.loads(props["classes"]) == json.loads(props["cnnkit"])["classes"]
        opset = next(o.version for o in model.opset_import if o.domain == "")
        return {**json.loads(props["cnnkit"]), "opset_in_file": opset}
    files = {"cnnkit.json": ""}
    if fmt == "torchscript":
        torch.jit.load(str(path), _extra_files=files)
    else:
        torch.export.load(str(path), extra_files=files)
    return json.loads(files["cnnkit.json"])


FORMATS = ["torchscript", "exported"]
if "onnxruntime" in sys.modules or __import__("importlib").util.find_spec("onnxruntime"):
    FORMATS.insert(0, "onnx")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_runs_any_batch_in_its_own_runtime_and_stores_the_metadata(run, fmt):
    out = run.parent / f"m-{fmt}"
    r = run_cli("export", str(run), "--format", fmt, "--out", str(out), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    model, saved = _model(run)
    exported = _runner(fmt, out)
    for batch in (1, 3):
        x = torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            got, expected = exported(x), model(x)
        assert got.shape == (batch, 10)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    stored = _stored(fmt, out)
    assert stored["classes"] == saved["classes"] and stored["task"] == "classify"
    assert stored["mean"] == pytest.approx(saved["mean"]) and stored["std"] == saved["std"]
    assert stored["input_shape"] == ["batch", 1, 8, 8]
    assert stored["preprocessing"]["resize"] == [8, 8]
    assert report["metadata"]["classes"] == saved["classes"]
    if fmt == "onnx":
        assert stored["opset_in_file"] == report["opset"] == 18
    check = report["parity"]
    assert check["passed"] and [row["batch"] for row in check["random"]] == [1, 3]
    assert check["real"]["batch"] == 8 and check["max_abs_diff"] < 1e-5
    text = run_cli("export", str(run), "--format", fmt, "--out", str(out))
    assert text.code == 0 and "parity passed" in text.out and "real:" in text.out, text.err


@pytest.mark.skipif("onnx" not in FORMATS, reason="onnxruntime is not installed")
def test_a_difference_over_the_tolerance_is_exit_1_after_the_document(run):
    out = run.parent / "strict.onnx"
    r = run_cli("export", str(run), "--out", str(out), "--tolerance", "0", "--json")
    report = json.loads(r.out)
    assert report["parity"]["max_abs_diff"] > 0  # onnxruntime's kernels round differently
    assert r.code == 1 and not report["parity"]["passed"]
    assert "parity: the onnx file differs" in r.err and len(r.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--format", "keras"], "--format: expected onnx, torchscript or exported"),
        (["--format", "torchscript", "--opset", "17"], "--opset applies to --format onnx"),
        (["--format", "torchscript", "--tolerance", "-1"], "--tolerance"),
        (["--format", "torchscript", "--set", "input=[1,9,9]"], "--set applies to a recipe"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(run, args, says):
    r = run_cli("export", str(run), *args, "--out", str(run.parent / "bad"))
    assert r.code == 2 and says in r.err and len(r.err.splitlines()) == 1, r.err


def test_onnx_without_its_packages_is_one_line_and_exit_2(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    r = run_cli("export", str(run), "--format", "onnx", "--out", str(run.parent / "x.onnx"))
    assert r.code == 2 and "pip install 'cnnkit[onnx]'" in r.err, r.err
    assert "onnxruntime" in r.err and len(r.err.splitlines()) == 1
    assert not (run.parent / "x.onnx").exists()


def test_a_model_an_exporter_refuses_is_one_line_naming_the_format(run, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported: data-dependent control flow\nmore detail")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    out = run.parent / "refused.pt"
    r = run_cli("export", str(run), "--format", "torchscript", "--out", str(out))
    assert r.code == 2 and len(r.err.splitlines()) == 1, r.err
    assert "torchscript cannot express this model: RuntimeError: Unsupported" in r.err
    assert not out.exists() and not list(run.parent.glob(".refused*"))
