"""``cnnkit predict``'s document: what a trained model says about image files or sentences.

The model, its preprocessing and its forward pass are evaluation's (``cnnkit.reports.evaluate``,
``cnnkit.train.data.inputs``, ``cnnkit.train.evaluate.predict``), so a file gets the class in
``cnnkit predict`` that ``cnnkit eval`` scores it with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError


@dataclass
class Trained:
    """A run's or checkpoint's model, rebuilt and loaded, with what its data needs."""

    model: Any  # torch.nn.Module, on the chosen device, in eval mode
    checkpoint: dict[str, Any]
    recipe: Any
    data: Any  # DataConfig
    train: Any  # TrainConfig
    path: Path  # the checkpoint file

    @property
    def task(self) -> str:
        return str(self.checkpoint["task"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.checkpoint["classes"])


def load_trained(target: str | Path, device: str | None = None) -> Trained:
    """Rebuild a run folder's (best.pt, else last.pt) or a checkpoint's model as ``cnnkit
    eval`` does: the recipe stored in the checkpoint, its weights, the run's device."""
    from cnnkit.model.build import build
    from cnnkit.reports.evaluate import _check_input_shape
    from cnnkit.targets import TRAINED, resolve
    from cnnkit.train.checkpoint import load_weights
    from cnnkit.train.plan import sections
    from cnnkit.train.runtime import pick_device

    resolved = resolve(str(target), accept=TRAINED, with_recipe=False)
    checkpoint, recipe = resolved.load_checkpoint()
    path = resolved.checkpoint
    assert path is not None  # load_checkpoint refuses a folder without one
    _check_input_shape(checkpoint, recipe.input_shape, path)
    data_config, train_config = sections(recipe)
    model = build(recipe)
    load_weights(model, checkpoint["model"], str(path))
    option = "--device" if device else "train.device"
    where = pick_device(device or train_config.device, option=option)
    return Trained(model.to(where).eval(), checkpoint, recipe, data_config, train_config, path)


def model_inputs(trained: Trained, inputs: Sequence[str]) -> tuple[list[str], Any]:
    """The inputs' names (file paths or sentences) and the model's input tensor."""
    from cnnkit.train.config import TEXT_SOURCES
    from cnnkit.train.data import inputs as prepare

    shape = tuple(trained.recipe.input_shape)
    if trained.data.name in TEXT_SOURCES or len(shape) == 1:
        lines = prepare.text_lines(inputs, trained.data)
        if not lines:
            raise InputError("no sentences to predict")
        vocab = tuple(trained.checkpoint.get("vocab", ()))
        return lines, prepare.text_tensor(lines, trained.data, shape, vocab)
    if len(shape) != 3:
        raise InputError(
            f"predict takes image files or sentences; this model's input is {list(shape)} "
            "(1-D signals: use cnnkit eval --data)"
        )
    files = prepare.image_files(inputs, trained.data)
    if not files:
        raise InputError("no image files to predict")
    mean, std = trained.checkpoint["mean"], trained.checkpoint["std"]
    return [str(f) for f in files], prepare.image_tensor(files, trained.data, shape, mean, std)


def predict_report(
    target: str | Path,
    inputs: Sequence[str],
    *,
    top_k: int = 5,
    batch_size: int | None = None,
    device: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """What ``cnnkit predict --json`` prints: one entry per input, in the order given."""
    from cnnkit.train.predict import forward

    if not inputs:
        raise InputError("give at least one input: image files, folders, a CSV or sentences")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size: expected a positive whole number, got {batch_size}")
    trained = load_trained(target, device)
    if trained.task == "segment" and out is None:
        raise InputError("a segmentation model writes mask PNGs: give --out DIR")
    names, x = model_inputs(trained, inputs)
    outputs = forward(trained.model, x, batch_size or trained.train.eval_batch_size)
    head = {
        "checkpoint": str(trained.path),
        "epoch": trained.checkpoint["epoch"],
        "task": trained.task,
        "inputs": len(names),
    }
    return {**head, **_by_task(trained, names, outputs, top_k, out)}


def _by_task(
    trained: Trained, names: list[str], outputs: Any, top_k: int, out: Path | None
) -> dict[str, Any]:
    """The task's part of the document: top-k classes, values, or the masks written."""
    from cnnkit.train.predict import top_classes, write_masks

    if trained.task == "classify":
        k = min(top_k, outputs.shape[1])
        tops = top_classes(outputs, trained.classes, k)
        rows = [
            {"input": n, "class": t[0]["class"], "probability": t[0]["probability"], "top": t}
            for n, t in zip(names, tops)
        ]
        return {"top_k": k, "predictions": rows}
    if trained.task == "segment":
        assert out is not None
        masks = write_masks(outputs, names, out, len(trained.classes))
        rows = [{"input": n, **m} for n, m in zip(names, masks)]
        return {"classes": list(trained.classes), "out": str(out), "predictions": rows}
    values = outputs.reshape(len(names), -1).double().tolist()
    targets = list(trained.data.targets)
    if len(targets) != outputs.reshape(len(names), -1).shape[1]:  # no names: the column index
        targets = [str(i) for i in range(outputs.reshape(len(names), -1).shape[1])]
    rows = [{"input": n, "values": v} for n, v in zip(names, values)]
    return {"targets": targets, "predictions": rows}
