"""``cnnkit profile``: where the time and memory go, per layer and end to end."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

CONVENTION = (
    "MACs are the analytic conv + linear multiply-accumulates per sample (bias excluded); a "
    "training step is counted as 3x the forward MACs (forward, input gradient, weight gradient)"
)


def profile_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="RECIPE|NAME|RUN",
            help="A recipe file or built-in name, a run folder, or torchvision:NAME.",
        ),
    ],
    device: Annotated[
        str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")
    ] = "auto",
    batch: Annotated[
        str,
        typer.Option(
            "--batch", "-b", metavar="N[,N...]", help="Batch sizes to sweep, e.g. 1,8,32,128."
        ),
    ] = "1,8,32",
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            metavar="infer|train",
            help="infer (no-grad forward) or train (fwd+bwd+SGD step).",
        ),
    ] = "infer",
    dtype: Annotated[
        str, typer.Option("--dtype", metavar="DTYPE", help="fp32, or autocast to bf16 / fp16.")
    ] = "fp32",
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="NHWC memory format (4-D inputs).")
    ] = False,
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (end to end only).")
    ] = False,
    warmup: Annotated[
        int, typer.Option("--warmup", metavar="N", help="Untimed iterations first.")
    ] = 3,
    iters: Annotated[
        int, typer.Option("--iters", metavar="N", help="Timed iterations (median, p90).")
    ] = 10,
    layers: Annotated[
        bool, typer.Option("--layers", help="Also time every layer (at the largest batch).")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
        ),
    ] = None,
    csv: Annotated[
        str | None,
        typer.Option(
            "--csv", metavar="PATH|-", help="Write the table(s) as CSV (pandas); - = stdout."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Measure latency, throughput and memory across batch sizes, end to end and per layer.

    Timing is honest: random inputs, warm-up excluded, CUDA events or synchronisation
    around timed regions, medians over repeats. Achieved MAC/s relate the time to the
    analytic count (see cnnkit params).
    """
    from cnnkit.parsing import parse_ints

    batches = parse_ints("--batch", batch, example="8 or 1,8,32")
    _check_choice("--mode", mode, ("infer", "train"))
    _check_choice("--dtype", dtype, ("fp32", "bf16", "fp16"))
    if warmup < 0:
        raise InputError(f"--warmup: expected a non-negative integer, got {warmup}")
    if iters < 1:
        raise InputError(f"--iters: expected a positive integer, got {iters}")
    if compile_ and layers:
        raise InputError("--layers times an eager model; drop --compile to time layers")
    if as_json and csv == "-":
        raise InputError("--json and --csv - both write to stdout; give --csv a file")
    recipe, name = _load(target, set_ or [])
    report = _measure(
        recipe, name, device, batches, mode, dtype, channels_last, compile_, warmup, iters, layers
    )
    if csv is not None:
        _write_csv(report, csv)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    elif csv != "-":
        _render(report)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{option}: expected one of {', '.join(choices)}, got {value!r}")


def _load(target: str, sets: list[str]) -> tuple[Any, str]:
    """A recipe from a file, a built-in name, ``torchvision:NAME``/``timm:NAME`` or a run
    folder (its resolved recipe)."""
    from pathlib import Path

    from cnnkit.recipe import load_recipe
    from cnnkit.recipe.model import recipe_from_text

    library, _, model = target.partition(":")
    if library in ("torchvision", "timm") and model:
        text = f"input: [3, 224, 224]\nmodel: {{{library}: {model}}}\n"
        return recipe_from_text(text, target, sets), target
    folder = Path(target)
    if folder.is_dir():
        for candidate in ("recipe.yaml", "resolved_recipe.yaml", "recipe.yml"):
            if (folder / candidate).is_file():
                return load_recipe(folder / candidate, sets), folder.name
        raise InputError(f"{target}: a folder, but no recipe.yaml in it (is it a run folder?)")
    recipe = load_recipe(target, sets)
    return recipe, recipe.name


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine")
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("--device mps: MPS is not available on this machine")
        return device
    if device != "cpu":
        raise InputError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def _memory_of(device: str) -> int | None:
    """Bytes of memory the device has in all (host RAM for the CPU); None when unknown."""
    import os

    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _check_batches(
    shape: tuple[int, ...], batches: tuple[int, ...], item: int, memory: int | None
) -> None:
    """Refuse a batch whose random input alone is larger than the device's whole memory:
    torch would fail with an allocator message, or overflow (--batch 1e30) as a TypeError."""
    from cnnkit.analysis.memory import human_bytes

    per_sample = item
    for size in shape:
        per_sample *= size
    for b in batches:
        if memory is not None and b * per_sample > memory:
            raise InputError(
                f"--batch {b}: one input batch of {b:,} x {'x'.join(map(str, shape))} needs "
                f"{human_bytes(b * per_sample)}, more than the {human_bytes(memory)} this "
                "device has in all"
            )


def _analytic(recipe: Any) -> tuple[int | None, dict[str, int]]:
    if recipe.graph is None:
        return None, {}
    from cnnkit.analysis import node_counts

    per_node = {name: c.macs for name, c in node_counts(recipe.graph).items()}
    return sum(per_node.values()), per_node


def _vocab(recipe: Any) -> int | None:
    graph = recipe.graph
    if graph is None:
        return None
    vocabs = [n.args["vocab"] for n in graph.nodes if n.kind == "embedding" and "input" in n.inputs]
    return min(vocabs) if vocabs else None


def _measure(
    recipe: Any,
    name: str,
    device: str,
    batches: tuple[int, ...],
    mode: str,
    dtype: str,
    channels_last: bool,
    compile_: bool,
    warmup: int,
    iters: int,
    want_layers: bool,
) -> dict[str, Any]:
    import torch

    from cnnkit.measure.profiling import Settings, end_to_end, per_layer, prepare
    from cnnkit.model.build import build

    device = _resolve_device(device)
    vocab = _vocab(recipe)
    notes: list[str] = []
    if channels_last and len(recipe.input_shape) != 3:
        notes.append("--channels-last applies to 4-D (N, C, H, W) inputs only: ignored")
        channels_last = False
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    settings = Settings(device, mode, dtype, channels_last, compile_, warmup, iters)
    _check_batches(recipe.input_shape, batches, 8 if vocab else 4, _memory_of(device))
    macs, per_node = _analytic(recipe)
    factor = 3 if mode == "train" else 1
    rows = []
    for b in batches:
        model = prepare(build(recipe), settings)
        try:
            result = end_to_end(model, recipe.input_shape, b, settings, vocab)
        except getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError):
            notes.append(f"batch {b}: out of memory on {device}; larger batches skipped")
            break
        except RuntimeError as err:
            raise InputError(
                f"{mode} at batch {b} on {device} with {dtype} failed: {err}"
            ) from None
        rows.append(
            {
                "batch": b,
                "median_ms": result.median * 1e3,
                "p90_ms": result.p90 * 1e3,
                "images_per_s": result.images_per_s,
                "peak_memory_bytes": result.peak_memory,
                "memory_kind": result.memory_kind,
                "achieved_macs_per_s": None if macs is None else macs * factor * b / result.median,
            }
        )
        del model
    layer_report = None
    if want_layers and rows:
        b = rows[-1]["batch"]
        model = prepare(build(recipe), settings)
        timed = per_layer(model, recipe.input_shape, b, settings, vocab)
        total = sum(t.total for t in timed)
        layer_rows = [
            {
                "name": t.name,
                "kind": t.kind,
                "output": list(t.output),
                "forward_ms": t.forward * 1e3,
                "backward_ms": None if t.backward is None else t.backward * 1e3,
                "total_ms": t.total * 1e3,
                "share": t.total / total if total else 0.0,
                "macs": per_node.get(t.name),
                "achieved_macs_per_s": None
                if per_node.get(t.name) in (None, 0) or t.total == 0
                else per_node[t.name] * factor * b / t.total,
            }
            for t in timed
        ]
        ranked = sorted(layer_rows, key=lambda r: r["total_ms"], reverse=True)
        layer_report = {
            "batch": b,
            "sum_ms": total * 1e3,
            "end_to_end_ms": rows[-1]["median_ms"],
            "slowest": [r["name"] for r in ranked[:5]],
            "layers": layer_rows,
        }
    return {
        "model": name,
        "input": list(recipe.input_shape),
        "device": device,
        "device_name": _device_name(device),
        "torch": torch.__version__,
        "mode": mode,
        "dtype": dtype,
        "channels_last": channels_last,
        "compile": compile_,
        "warmup": warmup,
        "iters": iters,
        "macs_per_sample": macs,
        "convention": CONVENTION,
        "batches": rows,
        "layers": layer_report,
        "notes": notes,
    }


def _device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    if device == "mps":
        return "Apple MPS"
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


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
