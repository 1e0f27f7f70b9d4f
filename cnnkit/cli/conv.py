"""``cnnkit conv``: output sizes, formulas, inverse solving and numeric convolution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

LAYER_ALIASES = {
    "conv": "conv",
    "convolution": "conv",
    "convtranspose": "convtranspose",
    "transposed": "convtranspose",
    "deconv": "convtranspose",
    "maxpool": "maxpool",
    "pool": "maxpool",
    "avgpool": "avgpool",
}
AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


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
    report = size_report(
        input=input,
        kernel=kernel,
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


def _split_input(
    shape: tuple[int, ...], kernel: tuple[int, ...], dims: int | None
) -> tuple[int | None, tuple[int, ...]]:
    """Split ``--input`` into (channels or None, spatial) using --dims or the kernel's length."""
    explicit = dims is not None
    if dims is None and len(kernel) > 1:
        dims = len(kernel)
    elif dims is None:
        dims = len(shape) if len(shape) <= 2 else len(shape) - 1
    if dims not in (1, 2, 3):
        source = "--dims" if explicit else ("--kernel" if len(kernel) > 1 else "--input")
        raise InputError(f"{source}: convolutions have 1, 2 or 3 spatial dimensions, not {dims}")
    if len(shape) == dims:
        return None, shape
    if len(shape) == dims + 1:
        return shape[0], shape[1:]
    raise InputError(
        f"--input: {'x'.join(map(str, shape))} has {len(shape)} values, but a {dims}-D layer "
        f"takes {dims} spatial sizes, optionally preceded by channels"
    )


def size_report(
    *,
    input: str,
    kernel: str,
    stride: str | None,
    padding: str | None,
    dilation: str,
    layer: str,
    output_padding: str | None,
    ceil_mode: bool,
    count_include_pad: bool,
    dims: int | None,
    out_channels: int | None,
    groups: int,
    target: str | None,
) -> dict[str, Any]:
    """Everything ``cnnkit conv`` reports about one layer, as the documented JSON document."""
    from cnnkit.arith import counts, sizes
    from cnnkit.arith.explain import formula, rule, unread_warning
    from cnnkit.parsing import parse_ints, parse_padding

    op = LAYER_ALIASES.get(layer.lower())
    if op is None:
        raise InputError(
            f"--layer: unknown layer {layer!r}; expected one of {', '.join(sizes.OPS)}"
        )
    shape = parse_ints("--input", input)
    ks = parse_ints("--kernel", kernel)
    channels, spatial = _split_input(shape, ks, dims)
    nd = len(spatial)
    names = AXIS_NAMES[nd]
    ss = parse_ints("--stride", stride) if stride is not None else None
    pad = parse_padding("--padding", padding) if padding is not None else None
    ds = parse_ints("--dilation", dilation)
    ops = (
        parse_ints("--output-padding", output_padding, least=0)
        if output_padding is not None
        else None
    )
    if ceil_mode and op not in ("maxpool", "avgpool"):
        raise InputError("--ceil-mode applies to pooling layers (maxpool, avgpool)")

    if target is not None:
        fixed = _Fixed(pad, ops)
        return _solve_report(op, spatial, ks, ss, ds, ceil_mode, target, names, fixed)
    pad = 0 if pad is None else pad
    ops = 0 if ops is None else ops

    try:
        geo = sizes.layer(op, spatial, ks, ss, pad, ds, ops, ceil_mode)
    except InputError:
        raise
    except Exception as err:  # ShapeError: say which option combination failed
        raise type(err)(f"--input {input} with --kernel {kernel}: {err}") from None

    # One warning per distinct message: "along H and W" rather than the same line twice.
    grouped: dict[str, list[str]] = {}
    for name, a in zip(names, geo.axes):
        if (msg := unread_warning(op, "{axis}", a)) is not None:
            grouped.setdefault(msg, []).append(name)
    warnings = [msg.replace("{axis}", " and ".join(axes)) for msg, axes in grouped.items()]
    notes = list(geo.notes)
    if op == "avgpool":
        notes.append(
            "count_include_pad="
            + (
                "True: windows over padding divide by the full kernel size (PyTorch's default)"
                if count_include_pad
                else "False: windows over padding divide by the real pixels"
            )
        )
    out_shape: list[int] = list(geo.output)
    in_shape: list[int] = list(spatial)
    params = None
    macs = None
    if channels is not None:
        in_shape = [channels, *spatial]
        if op in ("conv", "convtranspose"):
            out_shape = [out_channels, *geo.output]  # type: ignore[list-item]
        else:
            out_shape = [channels, *geo.output]
    if op in ("conv", "convtranspose") and out_channels is not None:
        if channels is None:
            raise InputError(
                "--out-channels needs the input channels: give --input as C x spatial, "
                "e.g. 3x224x224"
            )
        if out_channels < 1:
            raise InputError(f"--out-channels: expected a positive integer, got {out_channels}")
        counts.check_groups(channels, out_channels, groups)
        if op == "conv":
            weights = counts.conv_weights(channels, out_channels, _full(ks, nd), groups)
            macs = counts.conv_macs(channels, out_channels, _full(ks, nd), geo.output, groups)
        else:
            weights = counts.conv_weights(out_channels, channels, _full(ks, nd), groups)
            macs = counts.transposed_macs(channels, out_channels, _full(ks, nd), spatial, groups)
        params = {
            "weights": weights,
            "bias": out_channels,
            "total_with_bias": weights + out_channels,
            "total_without_bias": weights,
        }
    elif out_channels is not None:
        raise InputError("--out-channels applies to conv and convtranspose layers")
    elif groups != 1 and op not in ("conv", "convtranspose"):
        raise InputError("--groups applies to conv and convtranspose layers")

    return {
        "layer": op,
        "dims": nd,
        "input": in_shape,
        "output": out_shape,
        "rule": rule(op, geo.ceil_mode),
        "padding_mode": geo.padding_mode,
        "ceil_mode": geo.ceil_mode,
        "axes": [
            {
                "name": name,
                "input": a.input,
                "kernel": a.kernel,
                "stride": a.stride,
                "dilation": a.dilation,
                "padding": list(a.pad),
                "output_padding": a.output_padding,
                "output": a.output,
                "formula": formula(op, a, geo.ceil_mode),
                "unread": a.unread,
                "trailing_unread": a.trailing_unread,
                "dropped": a.dropped,
            }
            for name, a in zip(names, geo.axes)
        ],
        "params": params,
        "macs": macs,
        "flops": None if macs is None else 2 * macs,
        "warnings": warnings,
        "notes": notes,
    }


def _full(values: tuple[int, ...], nd: int) -> tuple[int, ...]:
    return values * nd if len(values) == 1 else values


@dataclass(frozen=True)
class _Fixed:
    """The --padding and --output-padding a --target search must keep (None: search them)."""

    padding: str | tuple[int, ...] | None
    output_padding: tuple[int, ...] | None

    def per_axis(self, nd: int) -> list[tuple[int | str | None, int | None]]:
        pads: tuple[int | str | None, ...] = (None,) * nd
        if isinstance(self.padding, str):
            pads = (self.padding,) * nd
        elif self.padding is not None:
            pads = _full(self.padding, nd)
        out_pads = (None,) * nd if self.output_padding is None else _full(self.output_padding, nd)
        if len(pads) != nd or len(out_pads) != nd:
            raise InputError(f"--padding/--output-padding: give 1 or {nd} values")
        return list(zip(pads, out_pads))


def _solve_report(
    op: str,
    spatial: tuple[int, ...],
    ks: tuple[int, ...],
    ss: tuple[int, ...] | None,
    ds: tuple[int, ...],
    ceil_mode: bool,
    target: str,
    names: tuple[str, ...],
    fixed: _Fixed,
) -> dict[str, Any]:
    from cnnkit.arith.solve import RANGES, solve
    from cnnkit.parsing import parse_ints

    nd = len(spatial)
    targets = _full(parse_ints("--target", target), nd)
    ks, ds = _full(ks, nd), _full(ds, nd)
    strides = _full(ss, nd) if ss is not None else (None,) * nd
    if len(targets) != nd or len(ks) != nd or len(ds) != nd or len(strides) != nd:
        raise InputError(f"--target/--kernel/--stride/--dilation: give 1 or {nd} values")
    axes = []
    for name, n, k, s, d, t, (p, o) in zip(
        names, spatial, ks, strides, ds, targets, fixed.per_axis(nd)
    ):
        found = solve(op, n, k, t, s, d, ceil_mode if ceil_mode else None, p, o)
        axes.append(
            {
                "name": name,
                "input": n,
                "kernel": k,
                "dilation": d,
                "stride": s,
                "padding": p,
                "output_padding": o,
                "target": t,
                "searched": RANGES[op],
                "solutions": [x.to_dict() for x in found],
            }
        )
    return {"layer": op, "dims": nd, "target": list(targets), "axes": axes}


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    if "target" in report:
        for axis in report["axes"]:
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
                f"{report['layer']} {axis['name']}: input {axis['input']}, kernel {axis['kernel']}"
                f"{fixed} -> output {axis['target']}"
            )
            if not axis["solutions"]:
                free = [w for w in ("padding", "stride") if axis[w] is None]
                if free:
                    what = " or ".join(free)
                    out.print(f"{title}: no {what} gives it (searched: {axis['searched']})")
                else:
                    out.print(f"{title}: these settings do not give it")
                continue
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
                    strides,
                    pad,
                    str(sol["output_padding"]),
                    str(sol["ceil_mode"]),
                    str(sol["unread"]),
                )
            print_table(out, table)
            if len(axis["solutions"]) > 40:
                out.print(f"... and {len(axis['solutions']) - 40} more (--json lists all)")
        return

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
