"""``cnnkit predict``: a trained model on image files, folders, a CSV of paths, or sentences."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN|CHECKPOINT", help="A run folder (uses best.pt) or a .pt checkpoint."
    ),
]
InputsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="INPUTS...",
        help="Image files, folders of images (recursive), CSV files with a path column; "
        "for a text model, sentences or .txt/.csv files of them.",
    ),
]
TopKOpt = Annotated[
    int, typer.Option("--top-k", min=1, metavar="K", help="Classes shown per input.")
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", min=1, metavar="N", help="Inputs per forward pass (default: the run's)."
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or mps (default: the run's)."),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", metavar="DIR", help="Segmentation: the folder to write one mask PNG per input."
    ),
]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print one CSV row per input.")]


def predict_command(
    target: TargetArg,
    inputs: InputsArg,
    top_k: TopKOpt = 5,
    batch_size: BatchOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    as_csv: CsvOpt = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Run a trained model on new inputs with the run's own preprocessing: the top-k classes
    and their probabilities (classification), the values (regression), or one class-index
    mask PNG per input in --out (segmentation).
    """
    from cnnkit.reports.predict import predict_report

    report = predict_report(
        target, inputs, top_k=top_k, batch_size=batch_size, device=device, out=out
    )
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    elif as_csv:
        typer.echo(_frame(report).to_csv(index=False), nl=False)
    else:
        _render(report)


def _rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per input, the columns of the table and of ``--csv``."""
    rows = []
    for p in report["predictions"]:
        row: dict[str, Any] = {"input": p["input"]}
        if report["task"] == "classify":
            for rank, top in enumerate(p["top"], 1):
                row[f"class_{rank}"] = top["class"]
                row[f"probability_{rank}"] = top["probability"]
        elif report["task"] == "segment":
            row["mask"] = p["mask"]
            row.update(zip(report["classes"], p["pixels"]))
        else:
            row.update(zip(report["targets"], p["values"]))
        rows.append(row)
    return rows


def _frame(report: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(_rows(report))


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console, print_table

    out = console()
    what = {"classify": "top classes", "segment": "masks", "regress": "values"}[report["task"]]
    out.print(
        f"{report['checkpoint']} (epoch {report['epoch']}): {what} of {report['inputs']} inputs",
        markup=False,
    )
    rows = _rows(report)
    table = Table()
    for name in rows[0]:
        table.add_column(name, justify="left" if name in ("input", "mask") else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    print_table(out, table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.6g}"
    return str(value)
