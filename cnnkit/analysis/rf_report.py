"""The document ``cnnkit rf`` prints: per-layer fields and the totals at one layer, and the
plan and verdict of ``--verify`` (which units to measure, how a measurement compares).

Pure Python: it reads the recipe graph and ``analysis.receptive``; the CLI renders it and
``--json`` prints it as is (the schema is in docs/reference/json.md).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from cnnkit.analysis.receptive import NodeField, receptive_fields
from cnnkit.arith.receptive import Field, Span
from cnnkit.errors import InputError
from cnnkit.recipe import Recipe

AXIS_NAMES = {1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}


def spatial_input(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial sizes of a recipe input: ``(C, *spatial)``, or ``(L,)`` token ids."""
    return shape if len(shape) == 1 else shape[1:]


def _number(value: Fraction) -> int | float:
    """A stride as JSON: an int, or a float after a transposed conv (0.5 for stride 1/2)."""
    return int(value) if value.denominator == 1 else float(value)


def _span(span: Span) -> dict[str, Any]:
    return {
        "period": span.period,
        "step": span.step,
        "first": list(span.first),
        "last": list(span.last),
    }


def _field(fields: Field, units: tuple[int, ...]) -> dict[str, Any]:
    ranges = fields.unit_range(units)
    return {
        "receptive_field": [hi for _, hi in ranges],
        "receptive_field_min": list(fields.smallest),
        "stride": [_number(s) for s in fields.stride],
        "padding": list(fields.padding),
        "centre": [fields.centre(a) for a in range(fields.dims)],
        "aligned": fields.aligned,
        "unit_fields": [list(r) for r in ranges],
        "spans": [[_span(s) for s in axis.spans] for axis in fields.axes],
        "varies": any(lo != hi for lo, hi in ranges) or max(fields.period) > 1,
    }


NO_FIELD = dict.fromkeys(
    (
        "receptive_field",
        "receptive_field_min",
        "stride",
        "padding",
        "centre",
        "unit_fields",
        "spans",
        "varies",
    )
)


def _layer(f: NodeField, inputs: int) -> dict[str, Any]:
    w = f.window
    fields = f.fields
    return {
        "name": f.name,
        "kind": f.kind,
        "output": list(f.output),
        "window": None
        if w is None
        else {
            "kernel": list(w.kernel),
            "stride": list(w.stride),
            "padding": list(w.pad_before),
            "dilation": list(w.dilation),
        },
        **({**NO_FIELD, "aligned": True} if fields is None else _field(fields, f.units)),
        "approximate": False,  # fields after adaptive pooling are exact now; kept for scripts
        "sees_all": f.sees_all,
        "unknown": f.unknown,
        "pointwise": w is None and not f.resampled and inputs == 1 and fields is not None,
    }


def inside(fields: Field, axis: int, unit: int, n: int) -> bool:
    """Unit ``unit``'s field along ``axis`` lies inside an input of ``n`` positions."""
    a = fields.axes[axis]
    return a.lo(unit) >= 0 and a.hi(unit) <= n - 1


def _full_units(fields: Field, out: tuple[int, ...], n: tuple[int, ...]) -> int:
    """Output positions whose whole field lies inside the input (reads no padding)."""
    total = 1
    for axis, count, size in zip(fields.axes, out, n):
        first, last = axis.inside(count, size)
        total *= max(0, last - first + 1)
    return total


def node_field(recipe: Recipe, name: str) -> NodeField:
    """The field of one node (by name) of a recipe's graph."""
    assert recipe.graph is not None
    return next(f for f in receptive_fields(recipe.graph) if f.name == name)


def rf_report(recipe: Recipe, at: str | None = None, all_layers: bool = False) -> dict[str, Any]:
    """Receptive fields of every layer and the totals at ``at`` (default: the last layer
    whose units still see a window of the input rather than all of it)."""
    graph = recipe.graph
    if graph is None:
        raise InputError("receptive fields need a recipe with layers")
    fields = receptive_fields(graph)
    layers = [_layer(f, len(graph[f.name].inputs)) for f in fields]
    chosen = _chosen(layers, at)
    chosen_field = fields[layers.index(chosen)]
    return {
        "model": recipe.name,
        "input": list(recipe.input_shape),
        "receptive_field": chosen["receptive_field"],
        "stride": chosen["stride"],
        "padding": chosen["padding"],
        "at": _totals(chosen, chosen_field, spatial_input(recipe.input_shape)),
        "output_sees_all": bool(layers) and layers[-1]["sees_all"],
        "layers": layers,
        "shown": [layer["name"] for layer in _shown(layers, chosen, all_layers)],
        "notes": _notes(layers),
    }


def _chosen(layers: list[dict[str, Any]], at: str | None) -> dict[str, Any]:
    if at is None:
        candidates = [layer for layer in layers if layer["receptive_field"] is not None]
        if not candidates:
            unknown = next((x["unknown"] for x in layers if x["unknown"]), None)
            if unknown:
                raise InputError(f"the receptive fields of this network are unknown {unknown}")
            raise InputError("no layer of this network has a spatial receptive field")
        return candidates[-1]
    found = [layer for layer in layers if layer["name"] == at]
    if not found:
        from cnnkit.layers import suggest

        raise InputError(f"--at: no layer named{suggest(at, [x['name'] for x in layers])}")
    chosen = found[0]
    if chosen["sees_all"]:
        raise InputError(
            f"--at: every unit of {at} ({chosen['kind']}) sees the whole input "
            "(it comes after a flatten, linear or global pooling); pick an earlier layer"
        )
    if chosen["unknown"]:
        raise InputError(f"--at: the field of {at} is unknown: {chosen['unknown']}")
    return chosen


def _notes(layers: list[dict[str, Any]]) -> list[str]:
    notes = []
    if any(layer["varies"] for layer in layers):
        notes.append(
            "* marks layers whose units' fields differ with their position (after upsampling "
            "or adaptive pooling with uneven windows): the field shown is the largest, "
            "jump and pad are unit 0's; --json's spans give every unit's exact bounds"
        )
    unknown = next((layer["unknown"] for layer in layers if layer["unknown"]), None)
    if unknown:
        notes.append(f"receptive fields are unknown {unknown}")
    return notes


def _totals(chosen: dict[str, Any], f: NodeField, spatial: tuple[int, ...]) -> dict[str, Any]:
    assert f.fields is not None
    dims = len(chosen["receptive_field"])
    out_spatial = chosen["output"][-dims:]
    return {
        "name": chosen["name"],
        "kind": chosen["kind"],
        "axes": AXIS_NAMES.get(dims, [str(a) for a in range(dims)]),
        "input": list(spatial),
        "output": out_spatial,
        **{key: chosen[key] for key in ("receptive_field", "receptive_field_min", "stride")},
        **{key: chosen[key] for key in ("padding", "centre", "aligned", "approximate")},
        "unit_fields": chosen["unit_fields"],
        "varies": chosen["varies"],
        "exceeds_input": [r > n for r, n in zip(chosen["receptive_field"], spatial)],
        "full_units": _full_units(f.fields, tuple(out_spatial), spatial),
        "output_units": _product(out_spatial),
    }


def _shown(
    layers: list[dict[str, Any]], chosen: dict[str, Any], all_layers: bool
) -> list[dict[str, Any]]:
    if all_layers:
        return layers
    # Windows, merges and the layer reported; after the first layer that sees the whole
    # input nothing changes, so the table stops there.
    first_global = next((i for i, x in enumerate(layers) if x["sees_all"]), len(layers))
    return [
        layer
        for layer in layers[: first_global + 1]
        if not layer["pointwise"] or layer["name"] == chosen["name"]
    ]


def _product(values: list[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result
