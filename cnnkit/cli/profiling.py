"""``cnnkit profile``: where the time and memory go, per layer and end to end."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption, SetOption
from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

TargetArg = Annotated[
    str,
    typer.Argument(
        metavar="RECIPE|NAME|RUN",
        help="A recipe file or built-in name, a run folder, or torchvision:NAME.",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")
]
BatchOpt = Annotated[
    str,
    typer.Option(
        "--batch", "-b", metavar="N[,N...]", help="Batch sizes to sweep, e.g. 1,8,32,128."
    ),
]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        metavar="infer|train",
        help="infer (no-grad forward) or train (fwd+bwd+SGD step).",
    ),
]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", metavar="DTYPE", help="fp32, or autocast to bf16 / fp16.")
]
ChannelsLastOpt = Annotated[
    bool, typer.Option("--channels-last", help="NHWC memory format (4-D inputs).")
]
CompileOpt = Annotated[
    bool, typer.Option("--compile", help="torch.compile the model (end to end only).")
]
WarmupOpt = Annotated[int, typer.Option("--warmup", metavar="N", help="Untimed iterations first.")]
ItersOpt = Annotated[
    int, typer.Option("--iters", metavar="N", help="Timed iterations (median, p90).")
]
LayersOpt = Annotated[
    bool, typer.Option("--layers", help="Also time every layer (at the largest batch).")
]
CsvOpt = Annotated[
    str | None,
    typer.Option("--csv", metavar="PATH|-", help="Write the table(s) as CSV (pandas); - = stdout."),
]


def profile_command(
    target: TargetArg,
    device: DeviceOpt = "auto",
    batch: BatchOpt = "1,8,32",
    mode: ModeOpt = "infer",
    dtype: DtypeOpt = "fp32",
    channels_last: ChannelsLastOpt = False,
    compile_: CompileOpt = False,
    warmup: WarmupOpt = 3,
    iters: ItersOpt = 10,
    layers: LayersOpt = False,
    set_: SetOption = None,
    csv: CsvOpt = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Measure latency, throughput and memory across batch sizes, end to end and per layer.

    Timing is honest: random inputs, warm-up excluded, CUDA events or synchronisation
    around timed regions, medians over repeats. Achieved MAC/s relate the time to the
    analytic count (see cnnkit params).
    """
    from cnnkit.parsing import parse_ints
    from cnnkit.reports.profile import check_options, profile_report

    batches = parse_ints("--batch", batch, example="8 or 1,8,32")
    check_options(mode, dtype, warmup, iters, compile_, layers)
    if as_json and csv == "-":
        raise InputError("--json and --csv - both write to stdout; give --csv a file")
    settings = {"device": device, "mode": mode, "dtype": dtype, "channels_last": channels_last}
    times = {"compile": compile_, "warmup": warmup, "iters": iters, "layers": layers}
    report = profile_report(target, overrides=set_ or (), batches=batches, **settings, **times)
    _output(report, csv, as_json)


def _output(report: dict[str, Any], csv: str | None, as_json: bool) -> None:
    """CSV to a file or stdout, then the JSON document or the tables (unless CSV took stdout)."""
    if csv is not None:
        _write_csv(report, csv)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    elif csv != "-":
        _render(report)


def _write_csv(report: dict[str, Any], where: str) -> None:
    import sys

    import pandas as pd

    frames = [pd.DataFrame(report["batches"]).assign(table="end_to_end")]
    if report["layers"]:
        frames.append(pd.DataFrame(report["layers"]["layers"]).assign(table="layers"))
    frame = pd.concat(frames, ignore_index=True)
    if where == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    from cnnkit.cli.output import write_atomic

    write_atomic(where, frame.to_csv(index=False))


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    title = (
        f"{report['model']} on {report['device_name']}: {report['mode']}, {report['dtype']}"
        + (", channels_last" if report["channels_last"] else "")
        + (", compiled" if report["compile"] else "")
    )
    table = Table(title=title, title_justify="left")
    for col in ("batch", "median ms", "p90 ms", "images/s", "peak memory", "GMAC/s"):
        table.add_column(col, justify="right")
    for r in report["batches"]:
        rate = r["achieved_macs_per_s"]
        table.add_row(
            str(r["batch"]),
            f"{r['median_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            f"{r['images_per_s']:,.1f}",
            _bytes(r["peak_memory_bytes"]) + (" RSS" if r["memory_kind"] == "cpu_peak_rss" else ""),
            "-" if rate is None else f"{rate / 1e9:,.1f}",
        )
    print_table(out, table)
    if report["macs_per_sample"]:
        out.print(f"{report['macs_per_sample']:,} MACs per sample. {report['convention']}.")
    layers = report["layers"]
    if layers:
        slow = set(layers["slowest"])
        table = Table(
            title=f"per layer at batch {layers['batch']}: layers sum to {layers['sum_ms']:.2f} "
            f"ms, end to end {layers['end_to_end_ms']:.2f} ms",
            title_justify="left",
        )
        for col in ("layer", "kind", "output", "fwd ms", "bwd ms", "share", "GMAC/s"):
            table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
        table.columns[0].no_wrap = True
        for r in layers["layers"]:
            style = "bold red" if r["name"] in slow else None
            rate = r["achieved_macs_per_s"]
            table.add_row(
                r["name"],
                r["kind"],
                "x".join(map(str, r["output"])),
                f"{r['forward_ms']:.3f}",
                "-" if r["backward_ms"] is None else f"{r['backward_ms']:.3f}",
                f"{100 * r['share']:.1f}%",
                "-" if rate is None else f"{rate / 1e9:,.1f}",
                style=style,
            )
        print_table(out, table)
        out.print("the five slowest layers are in bold red")
    for note in report["notes"]:
        out.print(f"note: {note}", markup=False)


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"
