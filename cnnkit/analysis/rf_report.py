"""The document ``cnnkit rf`` prints: per-layer fields and the totals at one layer.

Pure Python: it reads the recipe graph and ``analysis.receptive``; the CLI renders it and
``--json`` prints it as is (the schema is documented in the README).
"""

from __future__ import annotations

from typing import Any

from cnnkit.analysis.receptive import NodeField, receptive_fields
from cnnkit.errors import InputError
from cnnkit.recipe import Recipe

AXIS_NAMES = {1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"]}


def spatial_input(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial sizes of a recipe input: ``(C, *spatial)``, or ``(L,)`` token ids."""
    return shape if len(shape) == 1 else shape[1:]


def _layer(f: NodeField, inputs: int) -> dict[str, Any]:
    fields = f.fields
    widest = fields.widest if fields is not None else None
    w = f.window
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
        "receptive_field": None if fields is None else list(fields.largest),
        "receptive_field_min": None if fields is None else list(fields.smallest),
        "stride": None if fields is None else list(fields.stride),
        "padding": None if widest is None else list(widest.padding),
        "centre": None if widest is None else [widest.centre(a) for a in range(widest.dims)],
        "aligned": True if fields is None else fields.aligned,
        "approximate": f.approximate,
        "sees_all": f.sees_all,
        "unknown": f.unknown,
        "pointwise": w is None and inputs == 1 and fields is not None,
    }


def _full_units(field: dict[str, Any], out: list[int], n: tuple[int, ...]) -> int:
    """Output positions whose whole field lies inside the input (reads no padding)."""
    total = 1
    for size, jump, pad, m, count in zip(
        field["receptive_field"], field["stride"], field["padding"], n, out
    ):
        total *= sum(1 for i in range(count) if i * jump - pad >= 0 and i * jump - pad + size <= m)
    return total


def rf_report(recipe: Recipe, at: str | None = None, all_layers: bool = False) -> dict[str, Any]:
    """Receptive fields of every layer and the totals at ``at`` (default: the last layer
    whose units still see a window of the input rather than all of it)."""
    graph = recipe.graph
    if graph is None:
        raise InputError("receptive fields need a recipe with layers")
    fields = receptive_fields(graph)
    layers = [_layer(f, len(graph[f.name].inputs)) for f in fields]
    spatial = spatial_input(recipe.input_shape)
    notes: list[str] = []
    if at is None:
        candidates = [layer for layer in layers if layer["receptive_field"] is not None]
        if not candidates:
            raise InputError("no layer of this network has a spatial receptive field")
        chosen = candidates[-1]
    else:
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
    if any(layer["approximate"] for layer in layers if layer["receptive_field"]):
        notes.append(
            "~ marks fields after an adaptive pooling whose windows differ in size: the "
            "largest window is used"
        )
    unknown = next((layer["unknown"] for layer in layers if layer["unknown"]), None)
    if unknown:
        notes.append(f"receptive fields are unknown {unknown}: the algebra covers windows only")
    dims = len(chosen["receptive_field"])
    out_spatial = chosen["output"][-dims:]
    total = {
        "name": chosen["name"],
        "kind": chosen["kind"],
        "axes": AXIS_NAMES.get(dims, [str(a) for a in range(dims)]),
        "input": list(spatial),
        "output": out_spatial,
        "receptive_field": chosen["receptive_field"],
        "receptive_field_min": chosen["receptive_field_min"],
        "stride": chosen["stride"],
        "padding": chosen["padding"],
        "centre": chosen["centre"],
        "aligned": chosen["aligned"],
        "approximate": chosen["approximate"],
        "exceeds_input": [r > n for r, n in zip(chosen["receptive_field"], spatial)],
        "full_units": _full_units(chosen, out_spatial, spatial),
        "output_units": _product(out_spatial),
    }
    shown = layers
    if not all_layers:
        # Windows, merges and the layer reported; after the first layer that sees the whole
        # input nothing changes, so the table stops there.
        first_global = next((i for i, x in enumerate(layers) if x["sees_all"]), len(layers))
        shown = [
            layer
            for layer in layers[: first_global + 1]
            if not layer["pointwise"] or layer["name"] == chosen["name"]
        ]
    return {
        "model": recipe.name,
        "input": list(recipe.input_shape),
        "receptive_field": total["receptive_field"],
        "stride": total["stride"],
        "padding": total["padding"],
        "at": total,
        "output_sees_all": bool(layers) and layers[-1]["sees_all"],
        "layers": layers,
        "shown": [layer["name"] for layer in shown],
        "notes": notes,
    }


def _product(values: list[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result
