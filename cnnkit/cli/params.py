"""``cnnkit params``: parameters, MACs, FLOPs, all-ops, activations and training memory per
layer, with CI gates. Recipes are counted by the pure analysis (no torch, pandas or fvcore
unless ``--verify`` or an export asks for them); torchvision/timm models from the module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from cnnkit.cli.options import DebugOption, JsonOption, SetOption
from cnnkit.cli.output import paused_gc, print_table
from cnnkit.errors import InputError

_COLUMNS = (  # table header -> how a row shows it
    ("layer", lambda r: r.name),
    ("kind", lambda r: r.kind),
    ("output", lambda r: _shape(r.output)),
    ("params", lambda r: _num(r.trainable)),
    ("non-train.", lambda r: _num(r.params - r.trainable + r.buffers)),
    ("MACs", lambda r: _num(r.macs)),
    ("FLOPs", lambda r: _num(r.flops)),
    ("ops", lambda r: _num(r.ops)),
    ("activations", lambda r: _num(r.activations)),
    ("act. bytes", lambda r: _num(r.activation_bytes)),
)


class ParamsCommand(TyperCommand):
    """Appends each layer kind's ops rule, read from the registry, to ``--help`` (built
    only when help is shown, so the other commands do not pay for the registry import)."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from cnnkit.analysis.costs import ops_rules

        with formatter.section("ops column: the rule of each layer kind"):
            formatter.write_dl(list(ops_rules().items()))
        super().format_epilog(ctx, formatter)


RecipeArg = Annotated[
    str,
    typer.Argument(
        metavar="RECIPE|NAME",
        help="A recipe file, a built-in name (resnet50), or torchvision:NAME / timm:NAME.",
    ),
]
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        metavar="[C]xH[xW]",
        help="Input size: H (square), HxW or CxHxW (default: the recipe's; 3x224x224 for "
        "torchvision:/timm: models).",
    ),
]
BatchOpt = Annotated[
    str, typer.Option("--batch", "-b", metavar="N", help="Batch size (default 1).")
]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", metavar="DTYPE", help="Element type: fp32, fp16, bf16, fp64.")
]
OptimizerOpt = Annotated[
    str,
    typer.Option(
        "--optimizer",
        metavar="NAME",
        help="Optimizer state in the memory estimate: sgd, adam, sgd-nomomentum.",
    ),
]
DepthOpt = Annotated[
    str | None,
    typer.Option(
        "--depth",
        metavar="N",
        help="Group rows by the first N parts of their names (layer3.*).",
    ),
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify", help="Check against the built module, fvcore and torch's FlopCounterMode."
    ),
]
MaxParamsOpt = Annotated[
    str | None,
    typer.Option("--max-params", metavar="COUNT", help="Gate: exit 1 above this (5e6, 5M)."),
]
MaxMacsOpt = Annotated[
    str | None,
    typer.Option("--max-macs", metavar="COUNT", help="Gate: exit 1 above these MACs (1.2G)."),
]
MaxMemoryOpt = Annotated[
    str | None,
    typer.Option("--max-memory", metavar="BYTES", help="Gate on training memory (512MiB, 1.5GB)."),
]
CsvOpt = Annotated[
    str | None,
    typer.Option(
        "--csv", metavar="PATH|-", help="Write the layer rows as CSV to PATH (- = stdout)."
    ),
]
MarkdownOpt = Annotated[
    str | None,
    typer.Option(
        "--markdown",
        metavar="PATH|-",
        help="Write the layer rows as a Markdown table (- = stdout).",
    ),
]


def params_command(
    recipe: RecipeArg,
    set_: SetOption = None,
    input_: InputOpt = None,
    batch: BatchOpt = "1",
    dtype: DtypeOpt = "fp32",
    optimizer: OptimizerOpt = "sgd",
    depth: DepthOpt = None,
    verify: VerifyOpt = False,
    max_params: MaxParamsOpt = None,
    max_macs: MaxMacsOpt = None,
    max_memory: MaxMemoryOpt = None,
    csv: CsvOpt = None,
    markdown: MarkdownOpt = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Parameters, MACs, FLOPs, all-ops, activations and training memory of a network, layer by
    layer, with CI gates.

    MACs: conv + linear multiply-accumulates with the bias excluded (torchvision's published
    "GFLOPS"); FLOPs = 2 x MACs; ops count every operation by each layer kind's rule
    (docs/reference/ops.md). A failed gate exits 1. Conventions and the memory model:
    docs/reference/commands.md.
    """
    from cnnkit.parsing import parse_bytes, parse_count, parse_ints
    from cnnkit.reports import params as reports
    from cnnkit.targets import MODELS, resolve

    size = _one_int("--batch", batch, parse_ints)
    reports.check_batch(size)
    levels = None if depth is None else _one_int("--depth", depth, parse_ints)
    reports.check_choices(dtype, optimizer)
    budgets = {
        "max_params": None if max_params is None else parse_count("--max-params", max_params),
        "max_macs": None if max_macs is None else parse_count("--max-macs", max_macs),
        "max_memory": None if max_memory is None else parse_bytes("--max-memory", max_memory),
    }
    _check_stdout(as_json, csv, markdown)
    with paused_gc():  # a graph of many live objects: see paused_gc
        loaded = resolve(recipe, accept=MODELS, overrides=set_ or (), input_text=input_).recipe
        assert loaded is not None
        doc = reports.params_report(
            loaded, batch=size, dtype=dtype, optimizer=optimizer, verify=verify
        )
        warning = reports.memory_warning(loaded, doc)
        if warning:
            sys.stderr.write(f"warning: {warning}\n")
        _show(doc, levels, csv, markdown, as_json)
    reports.check_budgets(doc, **budgets, memory_text=max_memory)
    reports.check_verified(doc)


def _show(
    doc: dict[str, Any], depth: int | None, csv: str | None, markdown: str | None, as_json: bool
) -> None:
    """JSON, the CSV/Markdown exports, the table and the --verify lines, as asked."""
    from cnnkit.analysis.costs import aggregate
    from cnnkit.reports.params import layer_rows

    rows = layer_rows(doc)
    shown = rows if depth is None else aggregate(rows, depth)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(doc)
    for target, writer in ((csv, "csv"), (markdown, "markdown")):
        if target is not None:
            _export(shown, target, writer)
    if not as_json and "-" not in (csv, markdown):
        _render(doc, shown)
        if depth is None:  # thousands of rows: say how --depth groups them (on stderr)
            from cnnkit.cli.big_tables import print_depth_hint

            print_depth_hint([row.name for row in rows])
    if "verify" in doc and not as_json:
        _render_verification(doc["verify"], to_stderr="-" in (csv, markdown))


def _one_int(option: str, text: str, parse_ints) -> int:
    values = parse_ints(option, text)
    if len(values) != 1:
        raise InputError(f"{option}: expected one positive integer, got {text!r}")
    return values[0]


def _check_stdout(as_json: bool, csv: str | None, markdown: str | None) -> None:
    wants = {"--json": as_json, "--csv -": csv == "-", "--markdown -": markdown == "-"}
    takers = [option for option, on in wants.items() if on]
    if len(takers) > 1:
        raise InputError(f"{' and '.join(takers)} both write to stdout; give a file to one")


def _num(value: int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if value else "-"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def _render(doc: dict[str, Any], rows) -> None:
    """The rich table (every row, or groups with --depth), totals, memory, conventions."""
    from rich.table import Table

    from cnnkit.analysis.costs import LayerCost
    from cnnkit.analysis.memory import human_bytes
    from cnnkit.cli.output import console

    shape = "x".join(map(str, doc["input"]))
    table = Table(
        title=f"{doc['model']}: input {shape}, batch {doc['batch']}, {doc['dtype']}",
        title_justify="left",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for header, _ in _COLUMNS:
        numeric = header not in ("layer", "kind", "output")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(show(row) for _, show in _COLUMNS))
    t = doc["totals"]
    totals = LayerCost(
        "total", "", tuple(doc["output"]), t["params"], t["trainable"], t["buffers"],
        t["macs"], t["ops"], t["activations"], t["activation_bytes"],
    )  # fmt: skip
    table.add_section()
    table.add_row(*(show(totals) for _, show in _COLUMNS), style="bold")
    out = console()
    print_table(out, table)  # off a terminal it sizes the table itself: whole rows
    m = doc["memory"]
    out.print(
        f"\ntraining memory, batch {doc['batch']}, {m['dtype']}, {m['optimizer']}: "
        f"{m['total']:,} B ({human_bytes(m['total'])})",
        markup=False,
    )
    for key, label in (
        ("weights", "weights (params + buffers)"),
        ("gradients", "gradients"),
        ("optimizer_state", "optimizer state"),
        ("activations", "activations kept for backward"),
    ):
        out.print(f"  {label:31} {m[key]:>16,} B  {human_bytes(m[key]):>10}", markup=False)
    out.print(f"  assumes: {m['assumptions']}", markup=False, soft_wrap=True)
    c = doc["convention"]
    out.print(
        f"conventions: MACs = {c['macs']}; FLOPs = {c['flops']}; ops = {c['ops']}; "
        f"{c['per']}; shared parameters {c['shared_parameters']}.",
        markup=False,
        soft_wrap=True,
    )


_ORACLE_LABEL = {"module": "module", "fvcore": "fvcore", "flop_counter": "FlopCounterMode"}


def _render_verification(checked: dict[str, Any], to_stderr: bool) -> None:
    """Totals against each oracle, every difference with its reason, and what fvcore and
    FlopCounterMode count or could not count."""
    from cnnkit.cli.output import console

    out = console(stderr=to_stderr)
    v = checked["versions"]
    say = lambda text: out.print(text, markup=False, soft_wrap=True)  # noqa: E731
    fvcore = f"fvcore {v['fvcore']}" if v["fvcore"] else "fvcore (not installed: skipped)"
    say(
        f"\nverify: against the built module (torch {v['torch']}), {fvcore} and torch's "
        "FlopCounterMode"
    )
    for label, key, ref in (
        ("parameters", "params", "module"),
        ("buffers", "buffers", "module"),
        ("conv/linear MACs", "macs", "fvcore"),
        ("conv/linear MACs", "macs", "flop_counter"),
    ):
        ours, theirs = checked[key]["analysis"], checked[key][ref]
        if theirs is None:
            continue
        verdict = "match" if ours == theirs else "differ (see below)"
        name = _ORACLE_LABEL[ref]
        say(f"  {label:17} analysis {ours:>15,}   {name} {theirs:>15,}   {verdict}")
    _render_per_node(checked, say)
    if checked["fvcore_other_ops"]:
        other = ", ".join(f"{k} {n:,}" for k, n in sorted(checked["fvcore_other_ops"].items()))
        say(f"  fvcore also counts (not MACs here; in the ops column by cnnkit's rules): {other}")
    if checked["fvcore_unsupported_ops"]:
        ops = ", ".join(f"{k} x{n}" for k, n in sorted(checked["fvcore_unsupported_ops"].items()))
        say(f"  fvcore has no handle for (logs and counts 0): {ops}")
    flops = ", ".join(f"{k} {n:,}" for k, n in sorted(checked["flop_counter_flops"].items()))
    say(f"  FlopCounterMode FLOPs by op: {flops or 'none'}; it counts {ORACLE_COUNTS}")
    say("  verify: " + ("OK" if checked["ok"] else "FAILED: unexplained differences above"))


ORACLE_COUNTS = "convolutions and matrix products only, 2 FLOPs per MAC, bias ignored"


def _render_per_node(checked: dict[str, Any], say) -> None:
    """How many nodes match each MAC oracle exactly, then every difference with its reason."""
    differences = checked["differences"]
    oracles = ["fvcore", "flop_counter"] if checked["versions"]["fvcore"] else ["flop_counter"]
    node_macs = [d for d in differences if d["quantity"] == "macs" and d["kind"] != "-"]
    matched = ", ".join(
        f"{checked['mac_nodes'] - sum(d['oracle'] == o for d in node_macs)} match "
        f"{_ORACLE_LABEL[o]} exactly"
        for o in oracles
    )
    say(
        f"  per node: {checked['nodes']} nodes; params and buffers compared on every node, "
        f"conv/linear MACs on the {checked['mac_nodes']} nodes that have any: {matched}"
    )
    for d in differences:
        tag = "explained" if d["explained"] else "UNEXPLAINED"
        name = _ORACLE_LABEL[d["oracle"]]
        say(
            f"  {tag}: {d['name']} ({d['kind']}) {d['quantity']}: analysis {d['analysis']:,}, "
            f"{name} {d['reference']:,}: {d['reason']}"
        )


def _export(rows, target: str, kind: str) -> None:
    """CSV or Markdown through pandas; files are written atomically."""
    import pandas as pd

    frame = pd.DataFrame([{**r.as_dict(), "output": _shape(r.output)} for r in rows])
    text = frame.to_csv(index=False) if kind == "csv" else frame.to_markdown(index=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    _write_atomic(Path(target), text, f"--{kind}")


def _write_atomic(path: Path, text: str, option: str) -> None:
    from cnnkit.atomic import write_text

    try:
        write_text(path, text)
    except OSError as err:
        raise InputError(f"{option}: cannot write {str(path)!r}: {err.strerror}") from None
