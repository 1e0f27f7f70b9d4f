"""``cnnkit conv``: output sizes, formulas, inverse solving and numeric convolution."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption
from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

# The options, in --help order; the defaults are on conv_command's parameters.
_Size = "N[xN...]"
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="[C]xN[xN...]",
        help="Input size: 28, 28x28, or with channels 3x224x224 (C x spatial).",
    ),
]
KernelOpt = Annotated[
    str | None,
    typer.Option("--kernel", "-k", metavar=_Size, help="Kernel size: 3, or per axis 3x5."),
]
StrideOpt = Annotated[
    str | None,
    typer.Option("--stride", "-s", metavar=_Size, help="Stride (default 1; pooling: the kernel)."),
]
PaddingOpt = Annotated[
    str | None,
    typer.Option(
        "--padding",
        "-p",
        "--mode",
        metavar="N[xN...]|MODE",
        help="Zero padding per side (2, 1x2; default 0) or valid, same, full.",
    ),
]
DilationOpt = Annotated[
    str, typer.Option("--dilation", "-d", metavar=_Size, help="Dilation: 1, 2x2.")
]
LayerOpt = Annotated[
    str,
    typer.Option(
        "--layer", "-l", metavar="KIND", help="conv, convtranspose (deconv), maxpool, avgpool."
    ),
]
OutputPaddingOpt = Annotated[
    str | None,
    typer.Option(
        "--output-padding", metavar=_Size, help="Transposed conv: extra output size (default 0)."
    ),
]
CeilModeOpt = Annotated[
    bool, typer.Option("--ceil-mode", help="Pooling: round the output size up.")
]
CountIncludePadOpt = Annotated[
    bool,
    typer.Option(
        "--count-include-pad/--no-count-include-pad",
        help="Average pooling: divide by the full window (zeros included), as PyTorch does.",
    ),
]
DimsOpt = Annotated[
    int | None,
    typer.Option(
        "--dims", metavar="1|2|3", help="Spatial dimensions (1, 2, 3) when the input is ambiguous."
    ),
]
OutChannelsOpt = Annotated[
    int | None,
    typer.Option(
        "--out-channels", "-o", metavar="N", help="Output channels: adds parameters and MACs."
    ),
]
GroupsOpt = Annotated[int, typer.Option("--groups", "-g", metavar="N", help="Channel groups.")]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        metavar=_Size,
        help="Wanted output size: list paddings/strides giving it.",
    ),
]
XOpt = Annotated[
    str | None,
    typer.Option(
        "--x",
        metavar="ARRAY|FILE",
        help='Numeric input: "1 2 3; 4 5 6" (rows split by ;, planes by |) or a .csv/.npy.',
    ),
]
WOpt = Annotated[
    str | None,
    typer.Option(
        "--w",
        metavar="ARRAY|FILE",
        help="Numeric kernel, same forms; P filters split by || (trailing || for one).",
    ),
]
BiasOpt = Annotated[
    str | None,
    typer.Option("--bias", "-b", metavar="V[ V...]", help="Numeric bias, one value per filter."),
]
XcorrOpt = Annotated[
    bool,
    typer.Option("--xcorr", help="Cross-correlation (what nn.Conv computes), kernel unflipped."),
]
ExplainOpt = Annotated[
    str | None,
    typer.Option(
        "--explain", "-e", metavar="I,J", help="Numeric: show the products summed for output I,J."
    ),
]


def conv_command(
    input: InputOpt = None,
    kernel: KernelOpt = None,
    stride: StrideOpt = None,
    padding: PaddingOpt = None,
    dilation: DilationOpt = "1",
    layer: LayerOpt = "conv",
    output_padding: OutputPaddingOpt = None,
    ceil_mode: CeilModeOpt = False,
    count_include_pad: CountIncludePadOpt = True,
    dims: DimsOpt = None,
    out_channels: OutChannelsOpt = None,
    groups: GroupsOpt = 1,
    target: TargetOpt = None,
    x: XOpt = None,
    w: WOpt = None,
    bias: BiasOpt = None,
    xcorr: XcorrOpt = False,
    explain: ExplainOpt = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Convolution arithmetic: output sizes with formulas, solving, numeric convolution.

    Sizes follow PyTorch exactly; --out-channels adds parameters and MACs (bias excluded).
    --x and --w convolve small arrays (kernel flipped; --xcorr: as nn.Conv computes).
    """
    windows = {"stride": stride, "padding": padding, "dilation": dilation}
    if x is not None or w is not None:
        _numeric(x, w, bias=bias, xcorr=xcorr, explain=explain, as_json=as_json, **windows)
        return
    shape = {"layer": layer, "output_padding": output_padding, "ceil_mode": ceil_mode}
    shape |= {"count_include_pad": count_include_pad, "dims": dims, "target": target}
    counts = {"out_channels": out_channels, "groups": groups}
    _sizes(input, kernel, explain=explain, as_json=as_json, **windows, **shape, **counts)


def _numeric(
    x: str | None,
    w: str | None,
    *,
    padding: str | None,
    stride: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """--x and --w: both are needed; padding and stride default to 0 and 1 here."""
    if x is None or w is None:
        raise InputError("numeric convolution needs both --x and --w")
    from cnnkit.cli.conv_numeric import run_numeric

    run_numeric(x=x, w=w, padding=padding or "0", stride=stride or "1", as_json=as_json, **options)


def _sizes(
    input: str | None, kernel: str | None, *, explain: str | None, as_json: bool, **options: Any
) -> None:
    """Output sizes (or, with --target, the settings that give one), printed or as JSON."""
    if input is None or kernel is None:
        raise InputError(
            "give --input and --kernel for output sizes (or --x and --w for numeric convolution)"
        )
    if explain is not None:
        raise InputError("--explain I,J applies to numeric convolution (--x, --w)")
    from cnnkit.reports.conv import conv_report

    report = conv_report(input, kernel, **options)
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
