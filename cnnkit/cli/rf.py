"""``cnnkit rf``: receptive fields, effective stride and padding, layer by layer."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from cnnkit.cli.output import print_table
from cnnkit.errors import InputError

_DIMS = re.compile(r"^\d+(x\d+)+$")


def rf_command(
    recipe: Annotated[
        str | None,
        typer.Argument(
            metavar="RECIPE|NAME", help="A recipe file or built-in name (e.g. resnet50)."
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            "-l",
            metavar='"LAYER; LAYER..."',
            help='Layers instead of a recipe: "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2".',
        ),
    ] = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="[C]xH[xW]",
            help="Input size: H, HxW or CxHxW (default: the recipe's; 224x224 for --layers).",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", metavar="LAYER", help="Report the totals at this layer (a node name)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a recipe value: KEY.PATH=VALUE (YAML), repeatable.",
        ),
    ] = None,
    all_layers: Annotated[
        bool, typer.Option("--all", help="Also list pointwise layers (activations, BN, ...).")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Measure the field of a few units by back-propagation in PyTorch; exit 1 on a "
            "mismatch.",
        ),
    ] = False,
    erf: Annotated[
        str | None,
        typer.Option(
            "--erf", metavar="PNG", help="Save the effective receptive field (Luo et al.) as a PNG."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Receptive field, effective stride (jump) and effective padding of every layer.

    Araujo et al. (Distill, 2019); multi-path networks report the union of the paths'
    fields. Unit i sees input positions [i*stride - padding, i*stride - padding + field - 1]
    (marked *: it depends on i's place in a period). --verify exits 1 on a mismatch.
    """
    from cnnkit.analysis.rf_report import rf_report

    if (recipe is None) == (layers is None):
        raise InputError("give a recipe (cnnkit rf RECIPE) or --layers, not both or neither")
    loaded = _load(recipe, layers, input, set_ or [])
    report = rf_report(loaded, at=at, all_layers=all_layers)
    if verify:
        _check_probe_memory(loaded, "--verify", "fp64")
    if erf is not None:
        _check_probe_memory(loaded, "--erf", "fp32")
    if verify:
        report["verify"] = _verify(loaded, report)
    if erf is not None:
        report["erf"] = _erf(loaded, report, erf)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(report)
    else:
        _render(report)
    if verify and not report["verify"]["ok"]:
        from cnnkit.measure.verify import VerificationFailed

        bad = next(u for u in report["verify"]["units"] if not u["ok"])
        raise VerificationFailed(
            f"--verify: the measured field of {report['verify']['node']} unit {bad['unit']} "
            "does not match the algebra (MISMATCH above)"
        )


def _load(recipe: str | None, layers: str | None, input: str | None, sets: list[str]) -> Any:
    from cnnkit.parsing import parse_recipe_input
    from cnnkit.recipe import load_recipe

    if recipe is not None:
        loaded = load_recipe(recipe, sets)
        if input is not None:
            full = parse_recipe_input("--input", input, loaded.input_shape)
            loaded = load_recipe(recipe, [*sets, f"input=[{', '.join(map(str, full))}]"])
        if loaded.graph is None:
            raise InputError("rf needs a recipe with layers (not a torchvision:/timm: model)")
        return loaded
    if sets:
        raise InputError("--set applies to recipes; with --layers, edit the layer list")
    return layers_recipe(layers or "", input)


def layers_recipe(text: str, input: str | None) -> Any:
    """A recipe from ``--layers``: each item becomes a recipe layer; conv ``out`` defaults to
    the input's channel count (channels do not change receptive fields)."""
    import yaml

    from cnnkit.parsing import parse_ints, parse_layer_list
    from cnnkit.recipe.model import validate
    from cnnkit.recipe.source import Source, load_value

    items = parse_layer_list("--layers", text)
    wants = [len(v.split("x")) for _, args in items for v in args.values() if _DIMS.match(v)]
    shape = parse_ints("--input", input or "224x224")
    dims = max(wants) if wants else (len(shape) if len(shape) <= 2 else len(shape) - 1)
    if len(shape) == dims:
        shape = (1, *shape)
    elif len(shape) != dims + 1:
        raise InputError(f"--input: {input} does not fit {dims}-D layers")
    source = Source("--layers")
    model_layers: list[Any] = []
    for number, (kind, args) in enumerate(items):
        typed: dict[str, Any] = {}
        for key, value in args.items():
            if _DIMS.match(value):
                typed[key] = [int(v) for v in value.split("x")]
            else:
                try:
                    typed[key] = load_value(value)
                except yaml.YAMLError:
                    typed[key] = value
        if kind in ("conv", "convolution", "convtranspose", "deconv") and not {
            "out",
            "out_channels",
            "filters",
            "c",
        } & set(typed):
            typed["out"] = shape[0]
        model_layers.append({kind: typed or None})
        source.lines[("model", "layers", number)] = f"--layers item {number + 1} ({kind})"
    data = {"input": list(shape), "model": {"layers": model_layers}}
    return validate(data, source, "layers from --layers")


def _check_probe_memory(recipe: Any, option: str, dtype: str) -> None:
    """Refuse, before building, a probe whose one sample through the network (kept for the
    backward pass, in ``dtype``) and weights exceed this machine's memory."""
    from cnnkit.analysis.bounds import available_memory, check_sizes
    from cnnkit.analysis.counts import totals
    from cnnkit.analysis.memory import DTYPE_BYTES, human_bytes, saved_activation_bytes

    check_sizes(recipe)
    sums = totals(recipe.graph)
    size = DTYPE_BYTES[dtype]
    need = (sums.params + sums.buffers) * size + saved_activation_bytes(
        recipe.graph, 1, dtype, loss=False
    )
    have = available_memory()
    if have is not None and need > have.bytes:
        raise InputError(
            f"{option}: back-propagating one {dtype} sample needs at least {human_bytes(need)}, "
            f"more than the {human_bytes(have.bytes)} of {have.what}; give a smaller --input"
        )


def _verify(recipe: Any, report: dict[str, Any]) -> dict[str, Any]:
    from cnnkit.analysis import rf_verify
    from cnnkit.analysis.rf_report import node_field, spatial_input
    from cnnkit.measure.gradient_probe import measure_extents

    node = report["at"]["name"]
    spatial = spatial_input(recipe.input_shape)
    probes, notes = rf_verify.plan(node_field(recipe, node), spatial)
    extents, measure_notes = measure_extents(recipe, node, [p.unit for p in probes])
    measured = [tuple(zip(e.first, e.last)) for e in extents]
    result = rf_verify.verdict(probes, measured, spatial, lenient=bool(measure_notes))
    notes = [*notes, *measure_notes]
    if not result["conclusive"]:
        notes.append(
            "every measured unit's field covers the whole input, so this check cannot tell a "
            "right field from a wrong one: use a larger --input or an earlier --at"
        )
    return {"node": node, **result, "notes": notes}


def _erf(recipe: Any, report: dict[str, Any], path: str) -> dict[str, Any]:
    from cnnkit.analysis.rf_report import node_field
    from cnnkit.measure.gradient_probe import effective_field, mass_extent, save_heatmap

    at = report["at"]
    if len(at["receptive_field"]) != 2:
        raise InputError("--erf draws 2-D networks only")
    values, unit = effective_field(recipe, at["name"])
    fields = node_field(recipe, at["name"]).fields
    assert fields is not None
    box = fields.bounds(unit)
    save_heatmap(values, path, box)
    spans = mass_extent(values)
    return {
        "path": path,
        "node": at["name"],
        "unit": list(unit),
        "theoretical": [[a, b] for a, b in box],
        "mass_95": [list(s) for s in spans],
        "mass_95_size": [b - a + 1 for a, b in spans],
    }


def _render_verify(out: Any, v: dict[str, Any], names: list[str]) -> None:
    status = "[green]matches[/]" if v["ok"] else "[red]does NOT match[/]"
    out.print(
        f"verify ({v['node']}, {len(v['units'])} units): the back-propagated extent {status} "
        "the algebra" + ("" if v["conclusive"] else " [yellow](inconclusive)[/]")
    )
    for unit in v["units"]:
        place = "field inside the input" if unit["field_inside"] else "field clipped by the border"
        out.print(f"  {unit['role']} unit {tuple(unit['unit'])} ({place}):", markup=False)
        for name, axis in zip(names, unit["axes"]):
            out.print(
                f"    {name}: computed {axis['computed_in_input']} (unclipped "
                f"{axis['computed']}), measured {axis['measured']}: {axis['match']}",
                markup=False,
            )
    for note in v["notes"]:
        out.print(f"  note: {note}", markup=False)


def _axes(values: list[int] | list[float] | None) -> str:
    if values is None:
        return ""
    shown = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "x".join(shown)


def _render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    shown = [layer for layer in report["layers"] if layer["name"] in set(report["shown"])]
    dilated = any(
        layer["window"] and any(d != 1 for d in layer["window"]["dilation"]) for layer in shown
    )
    table = Table(
        title=f"{report['model']}: input {'x'.join(map(str, report['input']))}",
        title_justify="left",
    )
    columns = ["layer", "kind", "k", "s", "p", *(["d"] if dilated else []), "out", "field"]
    for col in [*columns, "jump", "pad", "centre"]:
        table.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    table.columns[0].overflow = "ellipsis"
    table.columns[0].no_wrap = True
    field_column = table.columns[len(columns) - 1]
    field_column.no_wrap = True
    field_column.min_width = 9
    for layer in shown:
        w = layer["window"] or {}
        if layer["sees_all"]:
            field = "all"
        elif layer["unknown"]:
            field = "unknown"
        else:
            field = _axes(layer["receptive_field"])
            if layer["receptive_field_min"] != layer["receptive_field"]:
                field = f"{_axes(layer['receptive_field_min'])}-{field}"
            if not layer["aligned"]:
                field += " !"
            if layer["varies"]:
                field += " *"
        dims = len(layer["receptive_field"] or ()) or None
        out_spatial = layer["output"][-dims:] if dims else layer["output"]
        row = [
            layer["name"],
            layer["kind"],
            _axes(w.get("kernel")),
            _axes(w.get("stride")),
            _axes(w.get("padding")),
            *([_axes(w.get("dilation"))] if dilated else []),
            _axes(out_spatial),
            field,
            _axes(layer["stride"]),
            _axes(layer["padding"]),
            _axes(layer["centre"]),
        ]
        table.add_row(*row)
    print_table(out, table)
    at = report["at"]
    out.print(
        f"at [bold]{at['name']}[/]: receptive field {_axes(at['receptive_field'])}"
        + (
            f" (smallest path {_axes(at['receptive_field_min'])})"
            if at["receptive_field_min"] != at["receptive_field"]
            else ""
        )
        + f", effective stride {_axes(at['stride'])}, effective padding {_axes(at['padding'])};"
        f" unit 0 is centred at input position {_axes(at['centre'])}"
    )
    if not at["aligned"]:
        out.print(
            "[yellow]paths are not aligned:[/] their fields have different centres or strides"
        )
    exceeds = [name for name, e in zip(at["axes"], at["exceeds_input"]) if e]
    if exceeds:
        out.print(f"the field exceeds the input along {' and '.join(exceeds)}")
    out.print(
        f"{at['full_units']:,} of {at['output_units']:,} output positions see a full field "
        "inside the input (no padding)"
    )
    for note in report["notes"]:
        out.print(f"note: {note}", markup=False)
    if "verify" in report:
        _render_verify(out, report["verify"], at["axes"])
    if "erf" in report:
        e = report["erf"]
        out.print(
            f"effective receptive field saved to {e['path']}: 95% of the gradient mass lies in "
            f"{_axes(e['mass_95_size'])} of the theoretical {_axes(at['receptive_field'])}"
        )
