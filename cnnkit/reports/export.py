"""``cnnkit export``'s document: a run's model written as ONNX, TorchScript or torch.export,
with its class names and preprocessing stored in the file and a parity check run on it.

A run folder or checkpoint exports its trained weights, rebuilt as ``cnnkit eval`` does, and
checks parity on its own test split as well as on random inputs; a recipe file or built-in
name exports the recipe's seeded random initialisation (a graph to inspect or deploy code
around), checked on random inputs only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError, InputError

REAL_SAMPLES = 8  # test-split samples the parity check runs


def _model(target: str, overrides: tuple[str, ...]) -> tuple[Any, Any, dict[str, Any], Any]:
    """The model on the CPU in eval mode, its recipe, what the metadata says about it, and
    the trained run (None for a recipe)."""
    from cnnkit.model.build import build
    from cnnkit.reports.predict import load_trained
    from cnnkit.targets import RECIPES, TRAINED, resolve

    resolved = resolve(target, accept=TRAINED | RECIPES, overrides=overrides, with_recipe=False)
    if resolved.kind in TRAINED:
        if overrides:
            raise InputError("--set applies to a recipe; a run exports as it was trained")
        trained = load_trained(target, "cpu")
        about = {
            "source": str(trained.path),
            "epoch": trained.checkpoint["epoch"],
            "task": trained.task,
            "classes": list(trained.classes),
            "mean": list(trained.checkpoint["mean"]),
            "std": list(trained.checkpoint["std"]),
        }
        return trained.model, trained.recipe, about, trained
    recipe = resolved.require_recipe()
    if recipe.external is not None:
        raise InputError("cnnkit export takes a run, a checkpoint or a recipe of layers")
    model = build(recipe).eval()
    about = {"source": target, "epoch": None, "task": None, "classes": [], "mean": [], "std": []}
    return model, recipe, about, None


def _preprocessing(about: dict[str, Any], trained: Any, shape: tuple[int, ...]) -> dict:
    """How an input must be prepared, as ``cnnkit predict`` prepares it."""
    if trained is None:
        return {"input": "the recipe's input; no data preprocessing (random weights)"}
    data = trained.data
    vocab = list(trained.checkpoint.get("vocab", ()))
    if vocab:
        return {
            "tokens": f"re.findall({data.token_pattern!r}, text"
            + (".lower())" if data.lowercase else ")"),
            "vocab": vocab,
            "unknown_id": 1,
            "pad_id": 0,
            "length": shape[0],
        }
    if len(shape) != 3:
        return {"mean": about["mean"], "std": about["std"]}
    resize = list(data.resize or shape[1:])
    return {
        "channels": "L" if shape[0] == 1 else "RGB",
        "resize": resize,
        "resample": "bilinear (PIL)",
        "scale": "pixels / 255",
        "mean": about["mean"],
        "std": about["std"],
        "centre_crop": list(shape[1:]),
    }


def _real_batch(trained: Any) -> tuple[Any, str | None]:
    """Up to ``REAL_SAMPLES`` of the run's test split (eval's own data path); none when the
    data cannot be read here, with the reason."""
    from cnnkit.reports.evaluate import _eval_split

    try:
        source, _, split = _eval_split(
            trained.checkpoint, trained.recipe, trained.data, None, "test"
        )
    except CnnkitError as err:
        return None, f"not checked on real inputs: {err}"
    return split.head(REAL_SAMPLES).cpu(), f"{source} test split"


def _vocab_rows(model: Any) -> int | None:
    import torch

    layer = next((m for m in model.modules() if isinstance(m, torch.nn.Embedding)), None)
    return None if layer is None else int(layer.num_embeddings)


def default_path(target: str, fmt: str) -> Path:
    """Beside the run (``RUN/model.onnx``, a checkpoint's folder), else ``./NAME.onnx``."""
    from cnnkit.measure.export import SUFFIX

    path = Path(target)
    suffix = SUFFIX[fmt] if fmt != "torchscript" else ".ts.pt"
    if path.is_dir():
        return path / f"model{suffix}"
    if path.is_file() and path.suffix in (".pt", ".pth", ".ckpt"):
        return path.with_name(f"{path.stem}{suffix}")
    return Path(f"{path.stem}{suffix}")


def export_report(
    target: str,
    fmt: str,
    out: Path | None = None,
    *,
    opset: int | None = None,
    tolerance: float | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Export, read the file back, run the parity check; what ``cnnkit export --json``
    prints. ``passed`` false is the CLI's exit 1, after the document is printed."""
    from cnnkit import __version__
    from cnnkit.measure import parity
    from cnnkit.measure.export import EXAMPLE_BATCH, INPUT, OPSET, OUTPUT, check_format, export
    from cnnkit.measure.export import load as load_exported
    from cnnkit.measure.export import metadata as read_metadata

    check_format(fmt)
    if opset is not None and fmt != "onnx":
        raise InputError("--opset applies to --format onnx")
    limit = parity.TOLERANCE if tolerance is None else tolerance
    if not limit >= 0:
        raise InputError(f"--tolerance: expected a number >= 0, got {tolerance}")
    model, recipe, about, trained = _model(target, overrides)
    path = Path(out) if out is not None else default_path(target, fmt)
    shape = tuple(recipe.input_shape)
    vocab = _vocab_rows(model) if len(shape) == 1 else None
    meta = {
        "format": fmt,
        "cnnkit_version": __version__,
        "opset": (opset or OPSET) if fmt == "onnx" else None,
        **about,
        "input_shape": ["batch", *shape],
        "input_dtype": "int64" if vocab is not None else "float32",
        "input_name": INPUT,
        "output_name": OUTPUT,
        "preprocessing": _preprocessing(about, trained, shape),
    }
    export(model, parity.random_batch(shape, EXAMPLE_BATCH, vocab, 0), fmt, path, meta)
    stored = read_metadata(fmt, path)
    run = load_exported(fmt, path)
    random = [parity.random_batch(shape, n, vocab, 1 + n) for n in parity.RANDOM_BATCHES]
    real, real_source = _real_batch(trained) if trained is not None else (None, None)
    check = parity.check(model, run, random, real, limit)
    return {
        "target": target,
        "format": fmt,
        "path": str(path),
        "bytes": path.stat().st_size,
        "opset": stored.get("opset_in_file") if fmt == "onnx" else None,
        "exporter": EXPORTERS[fmt],
        "dynamic_batch": True,
        "metadata": {k: v for k, v in stored.items() if k != "opset_in_file"},
        "parity": {"runtime": _runtime(fmt), "real_source": real_source, **check},
    }


EXPORTERS = {
    "onnx": "torch.onnx.export(dynamo=True)",
    "torchscript": "torch.jit.trace",
    "exported": "torch.export.export",
}


def _runtime(fmt: str) -> str:
    """What ran the exported file, with its version."""
    from importlib.metadata import version

    if fmt == "onnx":
        return f"onnxruntime {version('onnxruntime')}"
    loader = "torch.jit.load" if fmt == "torchscript" else "torch.export.load"
    return f"{loader} (torch {version('torch')})"
