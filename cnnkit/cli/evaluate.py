"""``cnnkit eval``: score a run or checkpoint on its test split or on other data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import BudgetExceeded, InputError


def eval_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="RUN|CHECKPOINT", help="A run folder (uses best.pt) or a .pt checkpoint."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            metavar="SOURCE",
            help="Other data, all of it: digits, synthetic, npz:FILE, csv:FILE, folder:DIR, "
            "idx:DIR, torchvision:NAME:DIR.",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            metavar="SPLIT",
            help="test, val or train (of the run's data, or of --data when it has splits).",
        ),
    ] = "test",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override the data section: data.KEY=VALUE (YAML), repeatable; e.g. "
            "--set data.resize=[32,32].",
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, metavar="K", help="Top-k accuracy's k.")
    ] = 5,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", metavar="DEVICE", help="auto, cpu, cuda or mps (default: the run's)."
        ),
    ] = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option(
            "--min-accuracy",
            metavar="FRACTION",
            help="Exit 1 when accuracy is below this (0-1, or %).",
        ),
    ] = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print per-class metrics and confusion rows as CSV.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="PNG",
            help="Also draw the run's loss and accuracy per epoch (metrics.csv) into this PNG.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Evaluate a trained model: loss, accuracy, top-k, per-class precision/recall/F1 and the
    confusion matrix (classification), or MSE, MAE and R² (regression).

    A run folder is evaluated with its best.pt (last.pt if none) on the test split cnnkit
    train used, with the training statistics stored in the checkpoint.
    """
    if split not in ("test", "val", "train"):
        raise InputError(f"--split: expected test, val or train, got {split!r}")
    gate = _fraction(min_accuracy) if min_accuracy is not None else None
    metrics = _metrics_file(target) if plot is not None else None  # fail before evaluating
    report = evaluate_target(target, data, split, top_k, device, tuple(set_ or ()))
    if plot is not None and metrics is not None:
        report["plot"] = {"path": str(plot), "metrics": str(metrics)}
        draw_curves(metrics, plot)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    elif as_csv:
        typer.echo(_csv(report), nl=False)
    else:
        _render(report)
        if "plot" in report:
            from cnnkit.cli.output import console

            console().print(f"training curves -> {plot}", markup=False, soft_wrap=True)
    if gate is not None:
        if report["task"] != "classify":
            raise InputError("--min-accuracy applies to classification runs")
        if report["accuracy"] < gate:
            raise BudgetExceeded(
                f"accuracy {report['accuracy']:.4f} is below --min-accuracy {gate:.4f} "
                f"({report['checkpoint']} on {report['data']} {report['split']})"
            )


def _fraction(value: float) -> float:
    if 1 < value <= 100:
        return value / 100
    if not 0 <= value <= 1:
        raise InputError(f"--min-accuracy: expected a fraction 0-1 or a percentage, got {value}")
    return value


def _data_option(spec: str) -> tuple[str, str | None]:
    """``npz:FILE`` -> ("npz", FILE); ``torchvision:MNIST:DIR`` -> ("torchvision:MNIST", DIR)."""
    parts = spec.split(":")
    if parts[0] == "torchvision":
        if len(parts) < 2 or not parts[1]:
            raise InputError(f"--data {spec}: expected torchvision:NAME:DIR")
        return f"torchvision:{parts[1]}", ":".join(parts[2:]) or None
    return parts[0], ":".join(parts[1:]) or None


def evaluate_target(
    target: str,
    data_spec: str | None,
    split: str,
    top_k: int,
    device_name: str | None,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Load the checkpoint, rebuild its model and data, and compute the full report."""
    from cnnkit.errors import CheckpointError, DataError
    from cnnkit.model.build import build
    from cnnkit.train import runs
    from cnnkit.train.checkpoint import load_checkpoint, load_weights
    from cnnkit.train.data import load_data
    from cnnkit.train.evaluate import full_report
    from cnnkit.train.plan import recipe_of_run
    from cnnkit.train.runtime import pick_device

    path = Path(target)
    if path.is_dir():
        path = path / runs.BEST if (path / runs.BEST).is_file() else path / runs.LAST
        if not path.is_file():
            raise CheckpointError("no best.pt or last.pt in this folder", where=target)
    checkpoint = load_checkpoint(path)
    recipe = recipe_of_run(checkpoint["recipe"], f"{path}:recipe")
    _check_input_shape(checkpoint, recipe.input_shape, path)
    data_config, train_config = _eval_sections(recipe, data_spec, overrides)
    data_config = dataclasses.replace(data_config, augment=())
    stats = (tuple(checkpoint["mean"]), tuple(checkpoint["std"]))
    bundle = load_data(data_config, tuple(recipe.input_shape), stats=stats)
    chosen, shown = getattr(bundle, split), split
    if data_spec is not None and bundle.val is None and bundle.test is None and split != "val":
        chosen, shown = bundle.train, "all"  # other data without splits: score all of it
    if chosen is None or len(chosen) == 0:
        raise DataError(f"the data has no {split} split", where=bundle.source)
    classes = tuple(checkpoint["classes"])
    if checkpoint["task"] == "classify" and bundle.classes != classes[: len(bundle.classes)]:
        chosen = _by_name(chosen, bundle.classes, classes, bundle.source)
    if checkpoint["task"] == "classify" and int(chosen.y.max()) >= len(classes):
        raise DataError(
            f"labels go up to {int(chosen.y.max())} but the model knows {len(classes)} classes",
            where=bundle.source,
        )
    model = build(recipe)
    load_weights(model, checkpoint["model"], str(path))
    option = "--device" if device_name else "train.device"
    device = pick_device(device_name or train_config.device, option=option)
    report = full_report(
        model.to(device),
        chosen.to(device),
        checkpoint["task"],
        classes,
        train_config.eval_batch_size,
        top_k,
    )
    return {
        "checkpoint": str(path),
        "epoch": checkpoint["epoch"],
        "data": bundle.source,
        "split": shown,
        **report,
    }


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
    from cnnkit.train.data import Split

    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(
            f"classes {unknown[:5]} are not among the model's {len(known)} classes", where=where
        )
    index = split.y.new_tensor([known.index(n) for n in names])
    return Split(split.x, index[split.y])


def _csv(report: dict[str, Any]) -> str:
    import pandas as pd

    if report["task"] != "classify":
        keys = ("samples", "mse", "mae", "r2", "r2_multioutput", "r2_variance_weighted")
        return pd.DataFrame([{k: report[k] for k in keys if k in report}]).to_csv(index=False)
    table = pd.DataFrame(report["per_class"])
    names = [f"pred_{row['class']}" for row in report["per_class"]]
    confusion = pd.DataFrame(report["confusion"], columns=names)
    return pd.concat([table, confusion], axis=1).to_csv(index=False)


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    head = (
        f"{report['checkpoint']} (epoch {report['epoch']}) on {report['data']} "
        f"{report['split']}: {report['samples']} samples"
    )
    out.print(head, markup=False)
    if report["task"] != "classify":
        out.print(regression_line(report), markup=False)
        return
    out.print(
        f"loss {report['loss']:.4f}  accuracy {report['accuracy']:.2%}  "
        f"top-{report['top_k']} {report['top_k_accuracy']:.2%}  macro F1 {report['macro_f1']:.4f}",
        markup=False,
    )
    if "averaging" in report:
        averaging = report["averaging"]
        out.print(
            f"macro means over the {averaging['macro_classes']} classes in truth or "
            f"predictions; 0/0 scores {averaging['zero_division']:g}",
            markup=False,
        )
    per_class = Table(title="per class", title_justify="left")
    for name in ("class", "precision", "recall", "F1", "support"):
        per_class.add_column(name, justify="right")
    for row in report["per_class"]:
        per_class.add_row(
            row["class"],
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    print_table(out, per_class)
    confusion = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for row in report["per_class"]:
        confusion.add_column(row["class"], justify="right")
    for row, counts in zip(report["per_class"], report["confusion"]):
        confusion.add_row(row["class"], *(str(c) if c else "." for c in counts))
    print_table(out, confusion)


def regression_line(report: dict[str, Any]) -> str:
    """MSE, MAE and R², saying how R² averages over more than one target."""
    line = f"MSE {report['mse']:.6g}  MAE {report['mae']:.6g}  R² {report['r2']:.4f}"
    targets = len(report.get("per_target", []))
    if targets > 1:
        line += (
            f" (mean over {targets} targets, scikit-learn's uniform_average; "
            f"variance_weighted {report['r2_variance_weighted']:.4f})"
        )
    return line


def _metrics_file(target: str) -> Path:
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


_SIZE = (360, 260)  # one panel, pixels
_MARGIN = (52, 14, 14, 36)  # left, top, right, bottom: room for tick labels
_SERIES = {  # metrics.csv column -> (panel, colour, legend)
    "train_loss": (0, (31, 119, 180), "train"),
    "val_loss": (0, (255, 127, 14), "val"),
    "train_accuracy": (1, (31, 119, 180), "train"),
    "val_accuracy": (1, (255, 127, 14), "val"),
}


def draw_curves(metrics: Path, path: Path) -> None:
    """Draw loss and accuracy per epoch side by side with Pillow (no plotting library is a
    dependency) and replace ``path`` atomically, so a reader never sees half a PNG."""
    import csv

    from PIL import Image, ImageDraw

    from cnnkit.atomic import atomic_open

    with open(metrics, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"{metrics}: no epochs recorded yet")
    epochs = [int(r["epoch"]) for r in rows]
    image = Image.new("RGB", (2 * _SIZE[0], _SIZE[1]), "white")
    draw = ImageDraw.Draw(image)
    for panel, title in enumerate(("loss", "accuracy")):
        series = {
            key: [float(r[key]) for r in rows]
            for key, (where, _, _) in _SERIES.items()
            if where == panel and rows[0].get(key, "") != ""
        }
        _panel(draw, panel * _SIZE[0], title, epochs, series)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG")


def _panel(
    draw: Any, x0: int, title: str, epochs: list[int], series: dict[str, list[float]]
) -> None:
    """One chart: frame, y ticks at the range's ends and middle, epoch ticks, lines, legend."""
    left, top, right, bottom = (
        x0 + _MARGIN[0],
        _MARGIN[1],
        x0 + _SIZE[0] - _MARGIN[2],
        (_SIZE[1] - _MARGIN[3]),
    )
    values = [v for line in series.values() for v in line] or [0.0, 1.0]
    low, high = (0.0, 1.0) if title == "accuracy" else (0.0, max(values) * 1.05 or 1.0)
    first, last = epochs[0], max(epochs[-1], epochs[0] + 1)

    def point(epoch: int, value: float) -> tuple[float, float]:
        x = left + (epoch - first) / (last - first) * (right - left)
        return x, bottom - (value - low) / (high - low) * (bottom - top)

    grey = (120, 120, 120)
    draw.rectangle([left, top, right, bottom], outline=grey)
    for value in (low, (low + high) / 2, high):
        _, y = point(first, value)
        draw.line([left - 4, y, left, y], fill=grey)
        label = f"{value:.0%}" if title == "accuracy" else f"{value:.2f}"
        draw.text((left - 6, y), label, fill="black", anchor="rm")
    step = max(1, -(-len(epochs) // 8))
    for epoch in epochs[::step]:
        x, _ = point(epoch, low)
        draw.line([x, bottom, x, bottom + 4], fill=grey)
        draw.text((x, bottom + 6), str(epoch), fill="black", anchor="mt")
    draw.text(((left + right) / 2, _SIZE[1] - 4), f"{title} per epoch", fill="black", anchor="mb")
    for n, (key, line) in enumerate(series.items()):
        _, colour, legend = _SERIES[key]
        points = [point(e, v) for e, v in zip(epochs, line)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        # Loss falls and accuracy rises: the legend goes in the corner the curves leave free.
        lx = right - 60
        ly = top + 8 + 14 * n if title == "loss" else bottom - 8 - 14 * (len(series) - 1 - n)
        draw.line([lx, ly, lx + 14, ly], fill=colour, width=2)
        draw.text((lx + 18, ly), legend, fill="black", anchor="lm")
