"""``cnnkit eval``'s document: a run or checkpoint scored on its own split or on other data.

The model and its data are rebuilt from the checkpoint's resolved recipe, normalised with the
training statistics stored in it; ``--data`` and ``--set data.KEY=VALUE`` change the data only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError

SPLITS = ("test", "val", "train")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"--split: expected test, val or train, got {split!r}")


def fraction(value: float) -> float:
    """``--min-accuracy`` as a fraction: 0-1 as it is, 1-100 as a percentage."""
    if 1 < value <= 100:
        return value / 100
    if not 0 <= value <= 1:
        raise InputError(f"--min-accuracy: expected a fraction 0-1 or a percentage, got {value}")
    return value


def check_accuracy(report: dict[str, Any], minimum: float) -> None:
    """The ``--min-accuracy`` gate on an ``eval_report``: below it is a failed gate (exit 1),
    naming what was scored on what."""
    from cnnkit.errors import BudgetExceeded

    if report["task"] not in ("classify", "segment"):  # segment: pixel accuracy
        raise InputError("--min-accuracy applies to classification and segmentation runs")
    if report["accuracy"] < minimum:
        raise BudgetExceeded(
            f"accuracy {report['accuracy']:.4f} is below --min-accuracy {minimum:.4f} "
            f"({report['checkpoint']} on {report['data']} {report['split']})"
        )


def eval_report(
    target: str | Path,
    *,
    data: str | None = None,
    split: str = "test",
    top_k: int = 5,
    device: str | None = None,
    overrides: tuple[str, ...] = (),
    keep: dict[str, Any] | None = None,
    weights: str = "raw",
) -> dict[str, Any]:
    """Score a run folder (its best.pt, else last.pt) or a checkpoint file on ``split`` of
    its own data, or of ``data`` (a ``--data`` spec); returns what ``cnnkit eval --json``
    prints (without the ``plot`` entry, which only ``--plot`` adds); ``keep`` receives a
    regression's predictions and targets (``full_report``). ``weights`` is ``raw`` (the
    trained weights) or ``ema`` (their moving average, ``train.ema``)."""
    from cnnkit.model.build import build
    from cnnkit.targets import TRAINED, resolve
    from cnnkit.train.checkpoint import load_weights
    from cnnkit.train.evaluate import full_report
    from cnnkit.train.runtime import pick_device

    check_split(split)
    if weights not in WEIGHTS:  # before anything is loaded
        raise InputError(f"--weights: expected raw or ema, got {weights!r}")
    resolved = resolve(str(target), accept=TRAINED, with_recipe=False)
    checkpoint, recipe = resolved.load_checkpoint()
    path = resolved.checkpoint
    assert path is not None  # load_checkpoint refuses a folder without one
    _check_input_shape(checkpoint, recipe.input_shape, path)
    data_config, train_config = _eval_sections(recipe, data, overrides)
    source, shown, chosen = _eval_split(checkpoint, recipe, data_config, data, split)
    model = build(recipe)
    load_weights(model, weights_of(checkpoint, weights, path), str(path))
    option = "--device" if device else "train.device"
    where = pick_device(device or train_config.device, option=option)
    report = full_report(
        model.to(where),
        chosen.to(where),
        checkpoint["task"],
        tuple(checkpoint["classes"]),
        train_config.eval_batch_size,
        top_k,
        keep,
    )
    head = {"checkpoint": str(path), "epoch": checkpoint["epoch"], "data": source, "split": shown}
    return {**head, "weights": weights, **report}


WEIGHTS = ("raw", "ema")


def weights_of(checkpoint: dict[str, Any], weights: str, path: Path) -> dict[str, Any]:
    """The state dict ``--weights`` picks: the trained weights, or the EMA a run with
    ``train.ema`` keeps beside them (an error naming the file when it has none)."""
    from cnnkit.errors import CheckpointError

    if weights == "raw":
        return checkpoint["model"]
    ema = checkpoint.get("ema")
    if not isinstance(ema, dict) or not isinstance(ema.get("model"), dict):
        raise CheckpointError(
            "has no EMA weights (train with train.ema to keep them); use --weights raw",
            where=str(path),
        )
    return ema["model"]


def metrics_file(target: str | Path) -> Path:
    """The run's ``metrics.csv``: in the run folder, or next to the checkpoint."""
    from cnnkit.errors import CheckpointError
    from cnnkit.train import runs

    path = Path(target)
    folder = path if path.is_dir() else path.parent
    if not (folder / runs.METRICS).is_file():
        raise CheckpointError(
            "--plot needs the run's metrics.csv, which is not here", where=str(folder)
        )
    return folder / runs.METRICS


def _eval_split(
    checkpoint: dict[str, Any], recipe: Any, config: Any, data_spec: str | None, split: str
) -> tuple[str, str, Any]:
    """The data source, the split's name as reported, and the split itself, labelled the way
    the model's outputs are (other data by class name)."""
    from cnnkit.errors import DataError
    from cnnkit.train.data import load_data

    config = dataclasses.replace(config, augment=())
    stats = (tuple(checkpoint["mean"]), tuple(checkpoint["std"]))
    vocab = tuple(checkpoint.get("vocab", ()))  # text: encode with the training vocabulary
    bundle = load_data(config, tuple(recipe.input_shape), stats=stats, vocab=vocab)
    chosen, shown = getattr(bundle, split), split
    if data_spec is not None and bundle.val is None and bundle.test is None and split != "val":
        chosen, shown = bundle.train, "all"  # other data without splits: score all of it
    if chosen is None or len(chosen) == 0:
        raise DataError(f"the data has no {split} split", where=bundle.source)
    classes = tuple(checkpoint["classes"])
    if checkpoint["task"] == "classify" and bundle.classes != classes[: len(bundle.classes)]:
        chosen = _by_name(chosen, bundle.classes, classes, bundle.source)
    if checkpoint["task"] in ("classify", "segment") and int(chosen.y.max()) >= len(classes):
        raise DataError(
            f"labels go up to {int(chosen.y.max())} but the model knows {len(classes)} classes",
            where=bundle.source,
        )
    return bundle.source, shown, chosen


def _check_input_shape(checkpoint: dict[str, Any], shape: tuple[int, ...], path: Path) -> None:
    """The input size is stored twice (the recipe's ``input`` and ``input_shape``); a file
    where they differ was not written by cnnkit as it stands, and the data would be resized
    to a size the model was never built for."""
    from cnnkit.errors import CheckpointError

    stored = tuple(checkpoint.get("input_shape", shape))
    if stored != tuple(shape):
        raise CheckpointError(
            f"input_shape {list(stored)} differs from its recipe's input {list(shape)}",
            where=str(path),
        )


def _data_option(spec: str) -> tuple[str, str | None]:
    """``npz:FILE`` -> ("npz", FILE); ``torchvision:MNIST:DIR`` -> ("torchvision:MNIST", DIR)."""
    parts = spec.split(":")
    if parts[0] == "torchvision":
        if len(parts) < 2 or not parts[1]:
            raise InputError(f"--data {spec}: expected torchvision:NAME:DIR")
        return f"torchvision:{parts[1]}", ":".join(parts[2:]) or None
    return parts[0], ":".join(parts[1:]) or None


def _eval_sections(recipe: Any, data_spec: str | None, overrides: tuple[str, ...]) -> tuple:
    """The run's data and train sections, with ``--data`` (another source, nothing held out
    unless the source defines its own splits) and then ``--set data.KEY=VALUE`` applied."""
    from cnnkit.recipe import apply_overrides
    from cnnkit.train.config import NoLocation, parse_data, to_plain
    from cnnkit.train.plan import sections

    data_config, train_config = sections(recipe)
    for text in overrides:
        if not text.strip().startswith("data."):
            raise InputError(
                f"--set {text}: eval takes data.KEY=VALUE overrides only "
                "(the model and its training come from the checkpoint)"
            )
    if data_spec is not None:
        name, data_path = _data_option(data_spec)
        raw = {**to_plain(data_config), "name": name, "path": data_path, "val": 0.0, "test": 0.0}
        raw.update(augment=[], limit=None, stratify=False)
        data_config = parse_data(raw, NoLocation(f"--data {data_spec}"))
    if overrides:
        plain = {**recipe.raw, "data": to_plain(data_config)}
        recipe = apply_overrides(dataclasses.replace(recipe, raw=plain), list(overrides))
        data_config = sections(recipe)[0]
    return data_config, train_config


def _by_name(split: Any, names: tuple[str, ...], known: tuple[str, ...], where: str) -> Any:
    """Relabel other data by class name: its folder or label names index its own sorted list,
    the model's output ``i`` means ``known[i]``."""
    from cnnkit.errors import DataError

    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(
            f"classes {unknown[:5]} are not among the model's {len(known)} classes", where=where
        )
    index = split.y.new_tensor([known.index(n) for n in names])
    return dataclasses.replace(split, y=index[split.y])  # a Split or a StreamSplit
