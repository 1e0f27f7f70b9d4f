"""``cnnkit rf``: receptive fields, effective stride and padding, layer by layer."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cnnkit.cli.options import DebugOption, JsonOption, SetOption
from cnnkit.cli.output import print_table
from cnnkit.errors import InputError
from cnnkit.plots import needs_matplotlib


def __getattr__(name: str) -> Any:
    """``cnnkit.cli.rf.layers_recipe``, where it used to live (now ``cnnkit.targets``);
    imported on use, so start-up does not pay for the resolver."""
    if name == "layers_recipe":
        from cnnkit.targets import layers_recipe

        return layers_recipe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RecipeArg = Annotated[
    str | None,
    typer.Argument(metavar="RECIPE|NAME", help="A recipe file or built-in name (e.g. resnet50)."),
]
LayersOpt = Annotated[
    str | None,
    typer.Option(
        "--layers",
        "-l",
        metavar='"LAYER; LAYER..."',
        help='Layers instead of a recipe: "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2".',
    ),
]
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="[C]xH[xW]",
        help="Input size: H, HxW or CxHxW (default: the recipe's; 224x224 for --layers).",
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", metavar="LAYER", help="Report the totals at this layer (a node name)."),
]
AllOpt = Annotated[
    bool, typer.Option("--all", help="Also list pointwise layers (activations, BN, ...).")
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Measure the field of a few units by back-propagation in PyTorch; exit 1 on a "
        "mismatch or when nothing was measured.",
    ),
]
ErfOpt = Annotated[
    str | None,
    typer.Option(
        "--erf",
        metavar="PNG",
        help="Save the effective receptive field (Luo et al.) as a PNG. Needs matplotlib "
        "(pip install 'cnnkit[plots]').",
        callback=needs_matplotlib("--erf"),
    ),
]


def rf_command(
    recipe: RecipeArg = None,
    layers: LayersOpt = None,
    input: InputOpt = None,
    at: AtOpt = None,
    set_: SetOption = None,
    all_layers: AllOpt = False,
    verify: VerifyOpt = False,
    erf: ErfOpt = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Receptive field, effective stride (jump) and effective padding of every layer.

    Araujo et al. (Distill, 2019); multi-path networks report the union of the paths'
    fields. Unit i sees input positions [i*stride - padding, i*stride - padding + field - 1]
    (marked *: it depends on i's place in a period). --verify exits 1 on a mismatch
    or when it measures nothing.
    """
    from cnnkit.cli.output import paused_gc
    from cnnkit.reports.rf import check_verified, rf_report
    from cnnkit.targets import RECIPES, layers_recipe, resolve

    if (recipe is None) == (layers is None):
        raise InputError("give a recipe (cnnkit rf RECIPE) or --layers, not both or neither")
    if set_ and recipe is None:
        raise InputError("--set applies to recipes; with --layers, edit the layer list")
    with paused_gc():  # a graph of many live objects: see paused_gc
        if recipe is not None:
            target = resolve(recipe, accept=RECIPES, overrides=set_ or [], input_text=input)
            loaded = target.recipe
        else:
            loaded = layers_recipe(layers or "", input)
        assert loaded is not None
        report = rf_report(loaded, at=at, all_layers=all_layers, verify=verify, erf=erf)
        if as_json:
            from cnnkit.cli.output import emit_json

            emit_json(report)
        else:
            _render(report)
    check_verified(report)


def _render_verify(out: Any, v: dict[str, Any], names: list[str]) -> None:
    status = {
        "match": "[green]matches[/] the algebra",
        "mismatch": "[red]does NOT match[/] the algebra",
        "inconclusive": "[red]is empty[/]: inconclusive, nothing measured",
    }[v["status"]]
    out.print(
        f"verify ({v['node']}, {len(v['units'])} units): the back-propagated extent {status}"
        + ("" if v["conclusive"] or not v["ok"] else " [yellow](inconclusive)[/]")
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


def _field_text(layer: dict[str, Any]) -> str:
    """The field column: all / unknown, or min-max with ! (paths not aligned) and * (varies)."""
    if layer["sees_all"]:
        return "all"
    if layer["unknown"]:
        return "unknown"
    field = _axes(layer["receptive_field"])
    if layer["receptive_field_min"] != layer["receptive_field"]:
        field = f"{_axes(layer['receptive_field_min'])}-{field}"
    if not layer["aligned"]:
        field += " !"
    if layer["varies"]:
        field += " *"
    return field


def shown_names(report: dict[str, Any]) -> frozenset[str]:
    """The names of the layers the table lists (``--all``: every one)."""
    return frozenset(report["shown"])


def _table(report: dict[str, Any]) -> Any:
    """The layer table (the d column only when some layer is dilated)."""
    from rich.table import Table

    names = shown_names(report)  # built once: a set per row made 10,002 rows quadratic
    shown = [layer for layer in report["layers"] if layer["name"] in names]
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
            _field_text(layer),
            _axes(layer["stride"]),
            _axes(layer["padding"]),
            _axes(layer["centre"]),
        ]
        table.add_row(*row)
    return table


def _render(report: dict[str, Any]) -> None:
    from cnnkit.cli.output import console

    out = console()
    print_table(out, _table(report))
    _render_at(out, report["at"])
    for note in report["notes"]:
        out.print(f"note: {note}", markup=False)
    if "verify" in report:
        _render_verify(out, report["verify"], report["at"]["axes"])
    if "erf" in report:
        e, field = report["erf"], report["at"]["receptive_field"]
        out.print(
            f"effective receptive field saved to {e['path']}: 95% of the gradient mass lies in "
            f"{_axes(e['mass_95_size'])} of the theoretical {_axes(field)}"
        )


def _render_at(out: Any, at: dict[str, Any]) -> None:
    """The totals at the chosen node, one sentence each."""
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
