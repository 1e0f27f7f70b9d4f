"""``cnnkit export``: a model out as ONNX, TorchScript or torch.export, with a parity check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption, SetOption

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN|CHECKPOINT|RECIPE",
        help="A run folder (uses best.pt), a .pt checkpoint, or a recipe file or built-in "
        "name (its random initialisation).",
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help="onnx (needs pip install 'cnnkit[onnx]'), torchscript or exported (torch.export).",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        metavar="FILE",
        help="Where to write (default: RUN/model.onnx, .ts.pt or .pt2; ./NAME.* for a recipe).",
    ),
]
OpsetOpt = Annotated[
    int | None, typer.Option("--opset", min=7, metavar="N", help="ONNX opset (default 18).")
]
ToleranceOpt = Annotated[
    float | None,
    typer.Option(
        "--tolerance",
        metavar="X",
        help="Exit 1 when the largest difference exceeds X * max(1, largest output) "
        "(default 1e-4).",
    ),
]


def export_command(
    target: TargetArg,
    fmt: FormatOpt = "onnx",
    out: OutOpt = None,
    opset: OpsetOpt = None,
    tolerance: ToleranceOpt = None,
    set_: SetOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Export a model with a dynamic batch size and its class names and preprocessing as
    metadata, then check the file against the model: the largest difference on random
    inputs (batches of 1 and 3) and on real ones (the run's test split); exit 1 over the
    tolerance.
    """
    from cnnkit.errors import BudgetExceeded
    from cnnkit.reports.export import export_report

    report = export_report(
        target, fmt, out, opset=opset, tolerance=tolerance, overrides=tuple(set_ or ())
    )
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    else:
        _render(report)
    check = report["parity"]
    if not check["passed"]:
        raise BudgetExceeded(
            f"parity: the {report['format']} file differs from the model by "
            f"{check['max_abs_diff']:.3g}, over --tolerance {check['tolerance']:g} "
            f"({check['rule']})"
        )


def _render(report: dict[str, Any]) -> None:
    from cnnkit.cli.output import console

    out = console()
    opset = f", opset {report['opset']}" if report["opset"] is not None else ""
    out.print(
        f"{report['format']} -> {report['path']} ({report['bytes']:,} bytes{opset}; "
        f"{report['exporter']}, dynamic batch)",
        markup=False,
    )
    check = report["parity"]
    for row in check["random"]:
        out.print(_line(f"random batch of {row['batch']}", row), markup=False)
    if check["real"] is not None:
        out.print(_line(f"real: {check['real_source']}", check["real"]), markup=False)
    elif check["real_source"]:
        out.print(check["real_source"], markup=False)
    verdict = "passed" if check["passed"] else "FAILED"
    out.print(
        f"parity {verdict} ({check['runtime']}): largest difference {check['max_abs_diff']:.3g}, "
        f"tolerance {check['tolerance']:g} x max(1, largest output)",
        markup=False,
    )


def _line(name: str, row: dict[str, Any]) -> str:
    return (
        f"  {name}: max |diff| {row['max_abs_diff']:.3g} "
        f"(largest output {row['max_abs_output']:.3g})"
    )
