"""``cnnkit eval``: score a run or checkpoint on its test split or on other data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption
from cnnkit.cli.output import print_confusion, print_table
from cnnkit.plots import needs_matplotlib

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN|CHECKPOINT", help="A run folder (uses best.pt) or a .pt checkpoint."
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="SOURCE",
        help="Other data, all of it: digits, synthetic, npz:FILE, csv:FILE, folder:DIR, "
        "idx:DIR, torchvision:NAME:DIR, text:FILE (encoded with the run's vocabulary), "
        "sentiment, waves, dots.",
    ),
]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--split",
        metavar="SPLIT",
        help="test, val or train (of the run's data, or of --data when it has splits).",
    ),
]
SetDataOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override the data section: data.KEY=VALUE (YAML), repeatable; e.g. "
        "--set data.resize=[32,32].",
    ),
]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, metavar="K", help="Top-k accuracy's k.")]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or mps (default: the run's)."),
]
MinAccuracyOpt = Annotated[
    float | None,
    typer.Option(
        "--min-accuracy",
        metavar="FRACTION",
        help="Exit 1 when accuracy is below this (0-1, or %).",
    ),
]
CsvOpt = Annotated[
    bool, typer.Option("--csv", help="Print per-class metrics and confusion rows as CSV.")
]
PlotOpt = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="PNG",
        help="Also draw the run's training curves (metrics.csv) into this PNG: loss, "
        "accuracy (regression: RMSE), learning rate, best epoch marked; for regression also "
        "predicted vs true per target (up to 6). Needs matplotlib "
        "(pip install 'cnnkit[plots]').",
        callback=needs_matplotlib("--plot"),
    ),
]
WeightsOpt = Annotated[
    str,
    typer.Option(
        "--weights",
        metavar="raw|ema",
        help="raw: the trained weights; ema: their moving average, kept beside them by a run "
        "with train.ema.",
    ),
]
LogLossOpt = Annotated[
    bool, typer.Option("--log-loss", help="With --plot: draw the loss on a log scale.")
]


def eval_command(
    target: TargetArg,
    data: DataOpt = None,
    split: SplitOpt = "test",
    set_: SetDataOpt = None,
    top_k: TopKOpt = 5,
    device: DeviceOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    as_csv: CsvOpt = False,
    plot: PlotOpt = None,
    log_loss: LogLossOpt = False,
    weights: WeightsOpt = "raw",
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Evaluate a trained model: loss, accuracy, top-k, per-class precision/recall/F1 and the
    confusion matrix (classification), or MSE, RMSE, MAE and R² (regression).

    A run folder is evaluated with its best.pt (last.pt if none) on the test split cnnkit
    train used, with the training statistics stored in the checkpoint; --weights ema scores
    the moving average of the weights a run with train.ema keeps (default: raw).
    """
    _evaluate(
        target,
        data,
        split,
        set_,
        top_k,
        device,
        min_accuracy,
        as_csv,
        plot,
        log_loss,
        as_json,
        weights=weights,
    )


def _evaluate(
    target: str,
    data: str | None,
    split: str,
    set_: list[str] | None,
    top_k: int,
    device: str | None,
    min_accuracy: float | None,
    as_csv: bool,
    plot: Path | None,
    log_loss: bool,
    as_json: bool,
    weights: str = "raw",
) -> None:
    """Check the options, score the target, draw the curves if asked, render, then gate."""
    from cnnkit.reports.evaluate import (
        check_accuracy,
        check_split,
        eval_report,
        fraction,
        metrics_file,
    )

    check_split(split)
    gate = fraction(min_accuracy) if min_accuracy is not None else None
    metrics = metrics_file(target) if plot is not None else None  # fail before evaluating
    options = {"data": data, "split": split, "top_k": top_k, "device": device, "weights": weights}
    kept: dict[str, Any] = {}
    report = eval_report(target, **options, overrides=tuple(set_ or ()), keep=kept)
    if plot is not None and metrics is not None:
        report["plot"] = {"path": str(plot), "metrics": str(metrics)}
        if "pred" in kept:  # regression: predicted vs true under the curves
            report["plot"]["predicted_vs_true"] = draw_regression(
                metrics, plot, kept, report, log_loss
            )
        else:
            draw_curves(metrics, plot, log_loss=log_loss)
    _output(report, as_json, as_csv)
    if gate is not None:
        check_accuracy(report, gate)


def _output(report: dict[str, Any], as_json: bool, as_csv: bool) -> None:
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    elif as_csv:
        typer.echo(_csv(report), nl=False)
    else:
        _render(report)
        if "plot" in report:
            from cnnkit.cli.output import console

            where = report["plot"]["path"]
            what = "training curves"
            if "predicted_vs_true" in report["plot"]:
                what += ", predicted vs true"
            console().print(f"{what} -> {where}", markup=False, soft_wrap=True)


def _csv(report: dict[str, Any]) -> str:
    import pandas as pd

    if report["task"] == "segment":
        from cnnkit.cli.segment_view import segment_csv

        return segment_csv(report)
    if report["task"] != "classify":
        keys = ("samples", "mse", "mae", "r2", "r2_multioutput", "r2_variance_weighted", "rmse")
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
        f"{report['checkpoint']}{' EMA' if report.get('weights') == 'ema' else ''} "
        f"(epoch {report['epoch']}) on {report['data']} "
        f"{report['split']}: {report['samples']} samples"
    )
    out.print(head, markup=False)
    if report["task"] == "segment":
        from cnnkit.cli.segment_view import render_segment

        render_segment(out, report)
        return
    if report["task"] != "classify":
        out.print(regression_line(report), markup=False)
        if len(report.get("per_target", [])) > 1:
            print_table(out, _per_target(report["per_target"]))
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
    print_confusion(out, report, "confusion")


def _per_target(rows: list[dict[str, Any]]) -> Any:
    """Each target's MSE, RMSE, MAE and R² (the report's ``per_target``)."""
    from rich.table import Table

    table = Table(title="per target", title_justify="left")
    for name in ("target", "MSE", "RMSE", "MAE", "R²"):
        table.add_column(name, justify="right")
    for row in rows:
        rmse = f"{row['rmse']:.6g}" if "rmse" in row else "-"
        table.add_row(
            str(row["target"]), f"{row['mse']:.6g}", rmse, f"{row['mae']:.6g}", f"{row['r2']:.4f}"
        )
    return table


def regression_line(report: dict[str, Any]) -> str:
    """MSE, MAE and R², saying how R² averages over more than one target."""
    rmse = f"  RMSE {report['rmse']:.6g}" if "rmse" in report else ""
    line = f"MSE {report['mse']:.6g}{rmse}  MAE {report['mae']:.6g}  R² {report['r2']:.4f}"
    targets = len(report.get("per_target", []))
    if targets > 1:
        line += (
            f" (mean over {targets} targets, scikit-learn's uniform_average; "
            f"variance_weighted {report['r2_variance_weighted']:.4f})"
        )
    return line


def draw_regression(
    metrics: Path, path: Path, kept: dict[str, Any], report: dict[str, Any], log_loss: bool
) -> dict[str, int]:
    """The curves and one predicted-vs-true panel per target (up to a limit) into ``path``;
    returns the ``plot.predicted_vs_true`` entry: how many panels of how many targets."""
    from cnnkit.plots import predicted_panels, save_regression

    r2 = [row["r2"] for row in report["per_target"]]
    true = kept["true"].reshape(len(kept["true"]), -1)
    save_regression(metrics, path, kept["pred"].reshape(true.shape), true, r2, log_loss=log_loss)
    return {"panels": predicted_panels(len(r2)), "targets": len(r2)}


def draw_curves(metrics: Path, path: Path, log_loss: bool = False) -> None:
    """Draw the run's training curves (``cnnkit.plots.save_curves``) into the PNG ``path``,
    replaced atomically, so a reader never sees half a PNG."""
    from cnnkit.plots import save_curves

    save_curves(metrics, path, log_loss=log_loss)
