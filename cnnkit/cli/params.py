"""``cnnkit params``: parameters, MACs, FLOPs, all-ops, activations and training memory per
layer, with CI gates. Recipes are counted by the pure analysis (no torch, pandas or fvcore
unless ``--verify`` or an export asks for them); torchvision/timm models from the module."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from cnnkit.cli.output import print_table
from cnnkit.errors import BudgetExceeded, InputError

_EXTERNAL = re.compile(r"^(torchvision|timm):(\S+)$")
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


def params_command(
    recipe: Annotated[
        str,
        typer.Argument(
            metavar="RECIPE|NAME",
            help="A recipe file, a built-in name (resnet50), or torchvision:NAME / timm:NAME.",
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
        ),
    ] = None,
    input_: Annotated[
        str | None,
        typer.Option(
            "--input",
            metavar="[C]xH[xW]",
            help="Input size: H (square), HxW or CxHxW (default: the recipe's; 3x224x224 for "
            "torchvision:/timm: models).",
        ),
    ] = None,
    batch: Annotated[
        str, typer.Option("--batch", "-b", metavar="N", help="Batch size (default 1).")
    ] = "1",
    dtype: Annotated[
        str, typer.Option("--dtype", metavar="DTYPE", help="Element type: fp32, fp16, bf16, fp64.")
    ] = "fp32",
    optimizer: Annotated[
        str,
        typer.Option(
            "--optimizer",
            metavar="NAME",
            help="Optimizer state in the memory estimate: sgd, adam, sgd-nomomentum.",
        ),
    ] = "sgd",
    depth: Annotated[
        str | None,
        typer.Option(
            "--depth",
            metavar="N",
            help="Group rows by the first N parts of their names (layer3.*).",
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Check against the built module and fvcore (needs torch)."),
    ] = False,
    max_params: Annotated[
        str | None,
        typer.Option("--max-params", metavar="COUNT", help="Gate: exit 1 above this (5e6, 5M)."),
    ] = None,
    max_macs: Annotated[
        str | None,
        typer.Option("--max-macs", metavar="COUNT", help="Gate: exit 1 above these MACs (1.2G)."),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory", metavar="BYTES", help="Gate on training memory (512MiB, 1.5GB)."
        ),
    ] = None,
    csv: Annotated[
        str | None,
        typer.Option(
            "--csv", metavar="PATH|-", help="Write the layer rows as CSV to PATH (- = stdout)."
        ),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(
            "--markdown",
            metavar="PATH|-",
            help="Write the layer rows as a Markdown table (- = stdout).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Parameters, MACs, FLOPs, all-ops, activations and training memory of a network, layer by
    layer, with CI gates.

    MACs: conv + linear multiply-accumulates with the bias excluded (torchvision's published
    "GFLOPS"); FLOPs = 2 x MACs; ops count every operation by each layer kind's rule
    (docs/reference/ops.md). A failed gate exits 1. Conventions and the memory model:
    docs/reference/commands.md.
    """
    from cnnkit.analysis.memory import DTYPE_BYTES, OPTIMIZER_STATES
    from cnnkit.parsing import parse_bytes, parse_count, parse_ints
    from cnnkit.recipe.limits import MAX_TENSOR_ELEMENTS

    size = _one_int("--batch", batch, parse_ints)
    if size > MAX_TENSOR_ELEMENTS:
        raise InputError(f"--batch: {size:,} is more than the limit of {MAX_TENSOR_ELEMENTS:,}")
    levels = None if depth is None else _one_int("--depth", depth, parse_ints)
    _check_choice("--dtype", dtype, DTYPE_BYTES)
    _check_choice("--optimizer", optimizer, OPTIMIZER_STATES)
    budgets = {
        "params": None if max_params is None else parse_count("--max-params", max_params),
        "macs": None if max_macs is None else parse_count("--max-macs", max_macs),
        "memory": None if max_memory is None else parse_bytes("--max-memory", max_memory),
    }
    _check_stdout(as_json, csv, markdown)

    loaded = _load(recipe, set_ or (), input_)
    if loaded.graph is not None:
        from cnnkit.analysis.bounds import check_sizes

        check_sizes(loaded)
    if verify and loaded.graph is None:
        raise InputError(
            "--verify checks the recipe analysis against PyTorch; torchvision/timm models are "
            "already counted from the built module by fvcore"
        )
    rows = _rows(loaded, size, dtype)
    doc = _document(loaded, rows, size, dtype, optimizer)
    _warn_memory(loaded, doc)
    checked = _verify(loaded) if verify else None
    if checked is not None:
        doc["verify"] = checked.as_dict()
    shown = rows if levels is None else _aggregate(rows, levels)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(doc)
    for target, writer in ((csv, "csv"), (markdown, "markdown")):
        if target is not None:
            _export(shown, target, writer)
    if not as_json and "-" not in (csv, markdown):
        _render(doc, shown)
    if checked is not None and not as_json:
        _render_verification(checked, to_stderr="-" in (csv, markdown))
    _gate(doc, budgets, {"memory": max_memory})
    if checked is not None and not checked.ok:
        from cnnkit.measure.verify import VerificationFailed

        bad = [d for d in checked.differences if not d.explained]
        raise VerificationFailed(
            f"--verify: {len(bad)} unexplained difference(s), first: {bad[0].name} "
            f"{bad[0].quantity} {bad[0].analysis:,} vs {bad[0].reference:,}"
        )


def _warn_memory(recipe, doc: dict[str, Any]) -> None:
    """One stderr line when the training estimate exceeds what this machine has available:
    the analysis still prints, but ``cnnkit train`` would refuse (or run out of memory)."""
    from cnnkit.analysis.bounds import available_memory, largest_layer
    from cnnkit.analysis.memory import human_bytes

    have = available_memory()
    total = doc["memory"]["total"]
    if have is None or total <= have.bytes:
        return
    where = (
        f"; the largest layer is {largest_layer(recipe, doc['batch'], 4)}" if recipe.graph else ""
    )
    sys.stderr.write(
        f"warning: training memory at --batch {doc['batch']} ({human_bytes(total)}) is more than "
        f"the {human_bytes(have.bytes)} of {have.what} on this machine{where}\n"
    )


def _one_int(option: str, text: str, parse_ints) -> int:
    values = parse_ints(option, text)
    if len(values) != 1:
        raise InputError(f"{option}: expected one positive integer, got {text!r}")
    return values[0]


def _check_choice(option: str, value: str, choices: dict[str, int]) -> None:
    if value not in choices:
        from cnnkit.layers import suggest

        raise InputError(f"{option}: unknown value{suggest(value, list(choices))}")


def _check_stdout(as_json: bool, csv: str | None, markdown: str | None) -> None:
    wants = {"--json": as_json, "--csv -": csv == "-", "--markdown -": markdown == "-"}
    takers = [option for option, on in wants.items() if on]
    if len(takers) > 1:
        raise InputError(f"{' and '.join(takers)} both write to stdout; give a file to one")


def _load(spec: str, overrides: list[str] | tuple[str, ...], input_text: str | None):
    """A recipe file or built-in name, or a ``torchvision:NAME``/``timm:NAME`` recipe;
    ``--input`` replaces the recipe's input (one size means every spatial axis)."""
    from cnnkit.parsing import parse_recipe_input
    from cnnkit.recipe import load_recipe, recipe_from_text

    match = _EXTERNAL.match(spec)
    if match is None or Path(spec).is_file():
        loaded = load_recipe(spec, list(overrides))
        if input_text is None:
            return loaded
        shape = parse_recipe_input("--input", input_text, loaded.input_shape)
        return load_recipe(spec, [*overrides, f"input=[{', '.join(map(str, shape))}]"])
    shape = parse_recipe_input("--input", input_text or "3x224x224", (3, 224, 224))
    text = json.dumps({"input": list(shape), "model": {match.group(1): match.group(2)}})
    return recipe_from_text(text, spec, list(overrides))


def _rows(recipe, batch: int, dtype: str):
    if recipe.graph is not None:
        from cnnkit.analysis.costs import graph_costs

        return graph_costs(recipe.graph, batch, dtype)
    from cnnkit.measure.verify import external_costs

    _check_external_input(recipe, batch)
    return external_costs(recipe, batch, dtype)


def _check_external_input(recipe, batch: int) -> None:
    """A torchvision/timm model is counted by running it on a batch: refuse, before it is
    built, an input over the tensor bound or a batch this machine cannot hold."""
    from cnnkit.analysis.bounds import available_memory
    from cnnkit.analysis.memory import human_bytes
    from cnnkit.layers._kind import prod
    from cnnkit.recipe.limits import MAX_TENSOR_ELEMENTS

    shape = "x".join(map(str, recipe.input_shape))
    elements = prod(recipe.input_shape)
    if elements > MAX_TENSOR_ELEMENTS:
        raise InputError(
            f"--input: {shape} is {elements:,} elements per sample, more than the limit of "
            f"{MAX_TENSOR_ELEMENTS:,} per tensor"
        )
    need, have = 4 * batch * elements, available_memory()
    if have is not None and need > have.bytes:
        raise InputError(
            f"--input/--batch: a batch of {batch} x {shape} alone needs {human_bytes(need)}, "
            f"more than the {human_bytes(have.bytes)} of {have.what}"
        )


def _aggregate(rows, depth: int):
    from cnnkit.analysis.costs import aggregate

    return aggregate(rows, depth)


def _verify(recipe):
    from cnnkit.analysis.costs import graph_costs
    from cnnkit.measure.verify import verify

    return verify(recipe, graph_costs(recipe.graph, 1, "fp32"))


def _document(recipe, rows, batch: int, dtype: str, optimizer: str) -> dict[str, Any]:
    """The ``--json`` document (schema in the README); the table renders the same data."""
    from cnnkit.analysis.costs import CONVENTION, ops_rules, total
    from cnnkit.analysis.memory import training_memory

    sums = total(rows)
    kept, basis = _kept_for_backward(recipe, sums, batch, dtype)
    memory = training_memory(
        trainable=sums.trainable,
        frozen=sums.params - sums.trainable + sums.buffers,
        activation_bytes=kept,
        dtype=dtype,
        optimizer=optimizer,
        activations_basis=basis,
    )
    ext = recipe.external
    totals = {k: v for k, v in sums.as_dict().items() if k not in ("name", "kind", "output")}
    return {
        "model": f"{ext.library}:{ext.name}" if ext else recipe.name,
        "source": "module+fvcore" if ext else "analysis",
        "input": list(recipe.input_shape),
        "output": list(recipe.graph.output_shape) if recipe.graph else list(sums.output),
        "batch": batch,
        "dtype": dtype,
        "convention": {**CONVENTION, "ops_rules": ops_rules() if not ext else None},
        "totals": totals,
        "memory": memory.as_dict(),
        "layers": [r.as_dict() for r in rows],
    }


def _kept_for_backward(recipe, sums, batch: int, dtype: str) -> tuple[int, str]:
    """Activation bytes kept for backward and how they were counted: by each kind's
    saved-for-backward rule for a recipe graph; for torchvision/timm modules (no rules),
    the input plus every leaf module's output."""
    from cnnkit.analysis.costs import input_elements
    from cnnkit.analysis.memory import DTYPE_BYTES, saved_activation_bytes

    if recipe.graph is not None:
        return saved_activation_bytes(recipe.graph, batch, dtype), "saved_for_backward"
    outputs = sums.activations + input_elements(recipe.input_shape, batch)
    return outputs * DTYPE_BYTES[dtype], "leaf_module_outputs"


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
    if not out.is_terminal:  # a pipe or file gets whole rows, not columns squeezed to 80
        wide = out.options.update_width(10_000)
        out.width = max(out.width, out.measure(table, options=wide).maximum)
    print_table(out, table)
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


def _render_verification(checked, to_stderr: bool) -> None:
    """Every difference with its reason, what matched, and what fvcore could not count."""
    from cnnkit.cli.output import console

    out = console(stderr=to_stderr)
    v = checked.versions
    say = lambda text: out.print(text, markup=False, soft_wrap=True)  # noqa: E731
    say(f"\nverify: against the built module (torch {v['torch']}) and fvcore {v['fvcore']}")
    for label, (ours, theirs), ref in (
        ("parameters", checked.params, "module"),
        ("buffers", checked.buffers, "module"),
        ("conv/linear MACs", checked.macs, "fvcore"),
    ):
        verdict = "match" if ours == theirs else "differ (see below)"
        say(f"  {label:17} analysis {ours:>15,}   {ref} {theirs:>15,}   {verdict}")
    bad_macs = sum(1 for d in checked.differences if d.quantity == "macs")
    say(
        f"  per node: {checked.nodes} nodes; params and buffers compared on every node, "
        f"conv/linear MACs on the {checked.mac_nodes} nodes that have any: "
        f"{checked.mac_nodes - bad_macs} match fvcore exactly"
    )
    for d in checked.differences:
        tag = "explained" if d.explained else "UNEXPLAINED"
        say(
            f"  {tag}: {d.name} ({d.kind}) {d.quantity}: analysis {d.analysis:,}, "
            f"reference {d.reference:,}: {d.reason}"
        )
    if checked.other_fvcore:
        other = ", ".join(f"{k} {n:,}" for k, n in sorted(checked.other_fvcore.items()))
        say(f"  fvcore also counts (not MACs here; in the ops column by cnnkit's rules): {other}")
    if checked.unsupported:
        ops = ", ".join(f"{k} x{n}" for k, n in sorted(checked.unsupported.items()))
        say(f"  fvcore has no handle for (logs and counts 0): {ops}")
    say("  verify: " + ("OK" if checked.ok else "FAILED: unexplained differences above"))


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


def _gate(doc: dict[str, Any], budgets: dict[str, float | None], texts: dict[str, Any]) -> None:
    """One line naming every budget exceeded and by how much; exit code 1."""
    from cnnkit.analysis.memory import human_bytes

    values = {
        "params": doc["totals"]["params"],
        "macs": doc["totals"]["macs"],
        "memory": doc["memory"]["total"],
    }
    failed = []
    for key, budget in budgets.items():
        value = values[key]
        if budget is None or value is None or value <= budget:
            continue
        ratio = f" ({value / budget:.1f}x)" if budget else ""
        if key == "memory":
            failed.append(
                f"training memory {value:,} B ({human_bytes(value)}) exceeds --max-memory "
                f"{texts['memory']} ({_int(budget):,} B) by {_int(value - budget):,} B{ratio}"
            )
        else:
            label = "params" if key == "params" else "MACs"
            failed.append(
                f"{label} {value:,} exceeds --max-{key} {_int(budget):,} by "
                f"{_int(value - budget):,}{ratio}"
            )
    if failed:
        raise BudgetExceeded("; ".join(failed))


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
