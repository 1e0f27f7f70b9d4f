"""``cnnkit conv``: output sizes, formulas, inverse solving and numeric convolution."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import InputError


def conv_command(
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="[C]xN[xN...]",
            help="Input size: 28, 28x28, or with channels 3x224x224 (C x spatial).",
        ),
    ] = None,
    kernel: Annotated[
        str | None,
        typer.Option("--kernel", "-k", metavar="N[xN...]", help="Kernel size: 3, or per axis 3x5."),
    ] = None,
    stride: Annotated[
        str | None,
        typer.Option(
            "--stride", "-s", metavar="N[xN...]", help="Stride (default 1; pooling: the kernel)."
        ),
    ] = None,
    padding: Annotated[
        str | None,
        typer.Option(
            "--padding",
            "-p",
            "--mode",
            metavar="N[xN...]|MODE",
            help="Zero padding per side (2, 1x2; default 0) or valid, same, full.",
        ),
    ] = None,
    dilation: Annotated[
        str, typer.Option("--dilation", "-d", metavar="N[xN...]", help="Dilation: 1, 2x2.")
    ] = "1",
    layer: Annotated[
        str,
        typer.Option(
            "--layer", "-l", metavar="KIND", help="conv, convtranspose (deconv), maxpool, avgpool."
        ),
    ] = "conv",
    output_padding: Annotated[
        str | None,
        typer.Option(
            "--output-padding",
            metavar="N[xN...]",
            help="Transposed conv: extra output size (default 0).",
        ),
    ] = None,
    ceil_mode: Annotated[
        bool, typer.Option("--ceil-mode", help="Pooling: round the output size up.")
    ] = False,
    count_include_pad: Annotated[
        bool,
        typer.Option(
            "--count-include-pad/--no-count-include-pad",
            help="Average pooling: divide by the full window (zeros included), as PyTorch does.",
        ),
    ] = True,
    dims: Annotated[
        int | None,
        typer.Option(
            "--dims",
            metavar="1|2|3",
            help="Spatial dimensions (1, 2, 3) when the input is ambiguous.",
        ),
    ] = None,
    out_channels: Annotated[
        int | None,
        typer.Option(
            "--out-channels", "-o", metavar="N", help="Output channels: adds parameters and MACs."
        ),
    ] = None,
    groups: Annotated[int, typer.Option("--groups", "-g", metavar="N", help="Channel groups.")] = 1,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            metavar="N[xN...]",
            help="Wanted output size: list paddings/strides giving it.",
        ),
    ] = None,
    x: Annotated[
        str | None,
        typer.Option(
            "--x",
            metavar="ARRAY|FILE",
            help='Numeric input: "1 2 3; 4 5 6" (rows split by ;, planes by |) or a .csv/.npy.',
        ),
    ] = None,
    w: Annotated[
        str | None,
        typer.Option(
            "--w",
            metavar="ARRAY|FILE",
            help="Numeric kernel, same forms; P filters split by || (trailing || for one).",
        ),
    ] = None,
    bias: Annotated[
        str | None,
        typer.Option(
            "--bias", "-b", metavar="V[ V...]", help="Numeric bias, one value per filter."
        ),
    ] = None,
    xcorr: Annotated[
        bool,
        typer.Option(
            "--xcorr", help="Cross-correlation (what nn.Conv computes), kernel unflipped."
        ),
    ] = False,
    explain: Annotated[
        str | None,
        typer.Option(
            "--explain",
            "-e",
            metavar="I,J",
            help="Numeric: show the products summed for output I,J.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Convolution arithmetic: output sizes with formulas, solving, numeric convolution.

    Sizes follow PyTorch exactly; --out-channels adds parameters and MACs (bias excluded).
    --x and --w convolve small arrays (kernel flipped; --xcorr: as nn.Conv computes).
    """
    if x is not None or w is not None:
        if x is None or w is None:
            raise InputError("numeric convolution needs both --x and --w")
        from cnnkit.cli.conv_numeric import run_numeric

        run_numeric(
            x=x,
            w=w,
            bias=bias,
            xcorr=xcorr,
            padding=padding or "0",
            stride=stride or "1",
            dilation=dilation,
            explain=explain,
            as_json=as_json,
        )
        return
    if input is None or kernel is None:
        raise InputError(
            "give --input and --kernel for output sizes (or --x and --w for numeric convolution)"
        )
    if explain is not None:
        raise InputError("--explain I,J applies to numeric convolution (--x, --w)")
    from cnnkit.reports.conv import conv_report

    report = conv_report(
        input,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        layer=layer,
        output_padding=output_padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        dims=dims,
        out_channels=out_channels,
        groups=groups,
        target=target,
    )
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    else:
        _render(report)


def _render(report: dict[str, Any]) -> None:
    from cnnkit.cli.output import console

    out = console()
    if "target" in report:
        for axis in report["axes"]:
            _render_solutions(out, report["layer"], axis)
    else:
        _render_sizes(out, report)


def _render_solutions(out: Any, layer: str, axis: dict[str, Any]) -> None:
    """One axis of a --target search: a table of the settings that give the size."""
    from rich.table import Table

    fixed = "".join(
        f", {label} {axis[key]}"
        for key, label in (
            ("stride", "stride"),
            ("padding", "padding"),
            ("output_padding", "output_padding"),
        )
        if axis[key] is not None
    )
    title = (
        f"{layer} {axis['name']}: input {axis['input']}, kernel {axis['kernel']}"
        f"{fixed} -> output {axis['target']}"
    )
    if not axis["solutions"]:
        free = [w for w in ("padding", "stride") if axis[w] is None]
        if free:
            what = " or ".join(free)
            out.print(f"{title}: no {what} gives it (searched: {axis['searched']})")
        else:
            out.print(f"{title}: these settings do not give it")
        return
    table = Table(title=title, title_justify="left")
    for col in ("stride", "padding", "output_padding", "ceil_mode", "unread inputs"):
        table.add_column(col, justify="right")
    for sol in axis["solutions"][:40]:
        smax = sol["stride_max"]
        if smax is None:
            strides = f"{sol['stride']}+"
        elif smax != sol["stride"]:
            strides = f"{sol['stride']}-{smax}"
        else:
            strides = str(sol["stride"])
        lo, hi = sol["padding"]
        pad = str(lo) if lo == hi else f"{lo} before, {hi} after (F.pad)"
        table.add_row(
            strides, pad, str(sol["output_padding"]), str(sol["ceil_mode"]), str(sol["unread"])
        )
    print_table(out, table)
    if len(axis["solutions"]) > 40:
        out.print(f"... and {len(axis['solutions']) - 40} more (--json lists all)")


def _render_sizes(out: Any, report: dict[str, Any]) -> None:
    """The shapes, a table per axis, the rule and formulas, counts, notes and warnings."""
    from rich.table import Table

    def fmt(shape: list[int | None]) -> str:
        return " x ".join("?" if v is None else str(v) for v in shape)

    out.print(
        f"[bold]{report['layer']}[/] {report['dims']}-D: {fmt(report['input'])} -> "
        f"[bold]{fmt(report['output'])}[/]"
    )
    table = Table(show_edge=False)
    for col in ("axis", "in", "kernel", "stride", "dilation", "padding", "out"):
        table.add_column(col, justify="right")
    for a in report["axes"]:
        lo, hi = a["padding"]
        table.add_row(
            a["name"],
            str(a["input"]),
            str(a["kernel"]),
            str(a["stride"]),
            str(a["dilation"]),
            str(lo) if lo == hi else f"{lo}+{hi}",
            str(a["output"]),
        )
    print_table(out, table)
    out.print(f"  {report['rule']}", markup=False)
    for a in report["axes"]:
        out.print(f"  {a['name']}: {a['formula']}", markup=False)
    if report["params"]:
        p = report["params"]
        out.print(
            f"parameters: {p['total_with_bias']:,} with bias ({p['weights']:,} weights + "
            f"{p['bias']:,} bias), {p['total_without_bias']:,} without"
        )
        out.print(
            f"MACs: {report['macs']:,} (multiply-accumulates, bias excluded); "
            f"FLOPs = 2 x MACs = {report['flops']:,}"
        )
    for note in report["notes"]:
        out.print(f"note: {note}", markup=False)
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")
