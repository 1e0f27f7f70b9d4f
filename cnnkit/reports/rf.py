"""``cnnkit rf`` as data: receptive fields, effective stride and padding layer by layer, and
optionally the field measured by back-propagation (``verify``) and the effective receptive
field (``erf``). The algebra is pure (``cnnkit.analysis.rf_report``); only ``verify`` and
``erf`` import torch, inside the functions that need it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnkit.errors import InputError

if TYPE_CHECKING:
    from cnnkit.recipe import Recipe


def rf_report(
    recipe: Recipe | str,
    *,
    at: str | None = None,
    all_layers: bool = False,
    verify: bool = False,
    erf: str | None = None,
) -> dict[str, Any]:
    """The ``cnnkit rf --json`` document of ``recipe`` (a Recipe, or a recipe file or
    built-in name): totals at node ``at`` (default: the output), every layer, and with
    ``verify`` the measured extents of a few units, with ``erf`` a PNG written to that path.
    A failed ``verify`` is ``report["verify"]["ok"] == False`` (``check_verified`` raises)."""
    from cnnkit.analysis.rf_report import rf_report as field_report

    recipe = _recipe(recipe)
    report = field_report(recipe, at=at, all_layers=all_layers)
    if verify:
        _check_probe_memory(recipe, "--verify", "fp64")
    if erf is not None:
        _check_probe_memory(recipe, "--erf", "fp32")
    if verify:
        report["verify"] = _verify(recipe, report)
    if erf is not None:
        report["erf"] = _erf(recipe, report, erf)
    return report


def check_verified(report: dict[str, Any]) -> None:
    """Exit-1 ``VerificationFailed`` when ``--verify`` measured a field the algebra did not
    predict (after the report is shown, so the MISMATCH rows are on screen)."""
    if "verify" not in report or report["verify"]["ok"]:
        return
    from cnnkit.measure.verify import VerificationFailed

    if report["verify"]["status"] == "inconclusive":
        raise VerificationFailed(
            f"--verify: inconclusive: no gradient of {report['verify']['node']} reached the "
            "input, so nothing was measured (not a pass)"
        )
    bad = next(u for u in report["verify"]["units"] if not u["ok"])
    raise VerificationFailed(
        f"--verify: the measured field of {report['verify']['node']} unit {bad['unit']} "
        "does not match the algebra (MISMATCH above)"
    )


def _recipe(recipe: Recipe | str) -> Recipe:
    if isinstance(recipe, str):
        from cnnkit.targets import RECIPES, resolve

        recipe = resolve(recipe, accept=RECIPES).require_recipe()
    if recipe.graph is None:
        raise InputError("rf needs a recipe with layers (not a torchvision:/timm: model)")
    return recipe


def _check_probe_memory(recipe: Recipe, option: str, dtype: str) -> None:
    """Refuse, before building, a probe whose one sample through the network (kept for the
    backward pass, in ``dtype``) and weights exceed this machine's memory."""
    from cnnkit.analysis.bounds import available_memory, check_sizes
    from cnnkit.analysis.counts import totals
    from cnnkit.analysis.memory import DTYPE_BYTES, human_bytes, saved_activation_bytes

    check_sizes(recipe)
    assert recipe.graph is not None
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


def _verify(recipe: Recipe, report: dict[str, Any]) -> dict[str, Any]:
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
    if result["status"] == "inconclusive":
        notes.append(
            "the probe measured no gradient at all, so it cannot confirm the field: try "
            "an earlier --at or a smaller --input"
        )
    elif not result["conclusive"]:
        notes.append(
            "every measured unit's field covers the whole input, so this check cannot tell a "
            "right field from a wrong one: use a larger --input or an earlier --at"
        )
    return {"node": node, **result, "notes": notes}


def _erf(recipe: Recipe, report: dict[str, Any], path: str) -> dict[str, Any]:
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
