"""Export parity for every built-in recipe (``cnnkit recipes``), from its seeded random
initialisation, at a small input so the suite stays quick.

The oracle is the exported file run by its own runtime (onnxruntime, ``torch.jit.load``,
``torch.export.load``) against the recipe's ``nn.Module`` in eval mode, on batches of 1 and 3
(the export saw 2). TorchScript runs for every recipe in the default suite; ONNX and
torch.export trace the graph with dynamo (10-80 s per large recipe on one core), so the default
suite runs a subset of each and ``CNNKIT_EXPORT=all`` all of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from cnnkit.recipe import load_recipe
from cnnkit.recipe.builtin import builtin_recipes
from tests.clitools import run_cli

# A small input each recipe still takes (its paper's size where that is already small).
SMALL = {
    "inception_v3": [3, 75, 75],  # its stem needs 75x75
    "lenet": None,
    "lenet1998": None,
    "deepconv": None,
    "textcnn": None,
    "unet": [3, 32, 32],
}
DEFAULT_SMALL = [3, 64, 64]
CANNOT = {"onnx": {}, "torchscript": {}, "exported": {}}  # recipe -> the message's words
QUICK = {"onnx": ("lenet", "resnet18", "textcnn", "unet"), "exported": ("lenet", "textcnn")}
EVERYTHING = os.environ.get("CNNKIT_EXPORT", "") == "all"
NAMES = sorted(builtin_recipes())


def _cases(fmt: str) -> list:
    quick = QUICK.get(fmt)
    later = pytest.mark.skipif(not EVERYTHING, reason="CNNKIT_EXPORT=all runs every recipe")
    return [
        pytest.param(name, marks=later) if quick is not None and name not in quick else name
        for name in NAMES
    ]


@pytest.fixture
def one_thread():
    """Timed with one intra-op thread, as on the 2-core CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _export(name: str, fmt: str, out: Path) -> tuple[int, dict | None, str]:
    size = SMALL.get(name, DEFAULT_SMALL)
    sets = ["--set", f"input={json.dumps(size)}"] if size else []
    r = run_cli("export", name, "--format", fmt, *sets, "--out", str(out), "--json")
    return r.code, json.loads(r.out) if r.out else None, r.err


def _check(name: str, fmt: str, tmp_path: Path, one_thread) -> None:
    out = tmp_path / f"{name}.{fmt}"
    code, report, err = _export(name, fmt, out)
    if name in CANNOT[fmt]:
        assert code == 2 and f"{fmt} cannot express this model" in err, err
        assert CANNOT[fmt][name] in err and len(err.splitlines()) == 1
        return
    assert code == 0, err
    assert report is not None and report["parity"]["passed"], report
    assert [row["batch"] for row in report["parity"]["random"]] == [1, 3]
    assert report["parity"]["real"] is None  # a recipe has no data of its own
    size = SMALL.get(name, DEFAULT_SMALL)
    recipe = load_recipe(name, [f"input={json.dumps(size)}"] if size else [])
    shape = tuple(recipe.input_shape)
    x = torch.randint(0, 100, (3, *shape)) if len(shape) == 1 else torch.randn(3, *shape)
    assert report["metadata"]["input_shape"] == ["batch", *shape]
    _oracle(name, fmt, out, x, recipe)


def _oracle(name: str, fmt: str, out: Path, x: torch.Tensor, recipe) -> None:
    """The file in its own runtime against the recipe's module, independently of cnnkit's check."""
    from cnnkit.model.build import build

    model = build(recipe).eval()
    with torch.no_grad():
        expected = model(x)
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        elif fmt == "torchscript":
            got = torch.jit.load(str(out))(x)
        else:
            got = torch.export.load(str(out)).module()(x)
    scale = max(1.0, float(expected.abs().max()))
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= 1e-4 * scale, name


@pytest.mark.parametrize("name", _cases("torchscript"))
def test_torchscript_parity_for_every_builtin_recipe(name, tmp_path, one_thread):
    _check(name, "torchscript", tmp_path, one_thread)


@pytest.mark.parametrize("name", _cases("onnx"))
def test_onnx_parity_for_builtin_recipes(name, tmp_path, one_thread):
    pytest.importorskip("onnxruntime")
    _check(name, "onnx", tmp_path, one_thread)


@pytest.mark.parametrize("name", _cases("exported"))
def test_torch_export_parity_for_builtin_recipes(name, tmp_path, one_thread):
    _check(name, "exported", tmp_path, one_thread)
