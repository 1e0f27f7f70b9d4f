"""What ``cnnkit rf --verify`` measures and how it judges the measurement (pure Python).

The torch side (``nn.gradient_probe``) back-propagates from a few units and returns, per axis,
the first and last input position with a non-zero gradient. Here: which units (a corner, the
centre, one whose field lies inside the input, and when fields depend on the position, units of
every residue class), and the verdict. A unit whose field lies inside the input must match
exactly; at the border only the clipped field is known to bound the measurement, since taps that
land on padding read nothing (on any axis: a path that reads only padding along H adds nothing
along W either).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnkit.analysis.receptive import NodeField
from cnnkit.analysis.rf_report import AXIS_NAMES

MAX_PROBES = 8  # each is one backward pass through the whole network


@dataclass(frozen=True)
class Probe:
    """One unit to measure and the input positions the algebra says it sees (unclipped)."""

    role: str  # corner | centre | inside | residue
    unit: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]


def plan(f: NodeField, spatial: tuple[int, ...]) -> tuple[list[Probe], list[str]]:
    """The units to measure at node ``f`` of a network with spatial input ``spatial``."""
    fields = f.fields
    assert fields is not None
    units = f.units
    centre = tuple(n // 2 for n in units)
    wanted = [("corner", (0,) * len(units)), ("centre", centre)]
    notes = []
    inner = []
    names = AXIS_NAMES.get(len(units), [str(a) for a in range(len(units))])
    for axis, (count, n) in enumerate(zip(units, spatial)):
        first, last = fields.axes[axis].inside(count, n)
        if first > last:
            notes.append(
                f"no unit's field lies inside the input along {names[axis]}: every measured "
                "unit is clipped by the border, where the measurement only bounds the field"
            )
            break
        inner.append(min(max(centre[axis], first), last))
    else:
        wanted.append(("inside", tuple(inner)))
    wanted += _residues(tuple(inner) if len(inner) == len(units) else centre, fields.period, units)
    probes: list[Probe] = []
    for role, unit in wanted:
        if unit not in [p.unit for p in probes] and len(probes) < MAX_PROBES:
            probes.append(Probe(role, unit, fields.bounds(unit)))
    residues = max(fields.period)
    if residues > 1:
        measured = {p.unit[0] % fields.period[0] for p in probes}
        notes.append(
            f"fields repeat every {'x'.join(map(str, fields.period))} units: "
            f"{len(measured)} of {min(residues, units[0])} residue classes measured"
        )
    return probes, notes


def _residues(
    base: tuple[int, ...], period: tuple[int, ...], units: tuple[int, ...]
) -> list[tuple[str, tuple[int, ...]]]:
    """Units near ``base`` covering every residue class of the field's period, per axis."""
    out = []
    for r in range(1, max(period)):
        unit = []
        for b, p, count in zip(base, period, units):
            i = b + r % p
            if i >= count:
                i -= p
            unit.append(min(max(i, 0), count - 1))
        out.append(("residue", tuple(unit)))
    return out


def verdict(
    probes: list[Probe],
    measured: list[tuple[tuple[int, int], ...]],
    spatial: tuple[int, ...],
    lenient: bool = False,
) -> dict[str, Any]:
    """Compare each probe's computed field with its measured extent ((-1, -1): nothing).
    ``status``: ``match``, ``mismatch`` or ``inconclusive`` (no unit measured any gradient);
    ``ok`` only for ``match``.

    ``lenient``: a layer whose gradient reaches only part of its window was kept (dilated max
    pooling), so a measured extent inside the computed one is accepted anywhere."""
    units = []
    for probe, extent in zip(probes, measured):
        clipped = [_clip(b, n) for b, n in zip(probe.bounds, spatial)]
        border = any(c != list(b) for c, b in zip(clipped, probe.bounds))
        axes = [
            _axis(i, b, c, m, border or lenient)
            for i, b, c, m in zip(probe.unit, probe.bounds, clipped, extent)
        ]
        units.append(
            {
                "role": probe.role,
                "unit": list(probe.unit),
                "field_inside": not border,
                "ok": all(a["match"] != "MISMATCH" for a in axes),
                "axes": axes,
            }
        )
    whole = all(
        a["computed_in_input"] == [0, n - 1] for u in units for a, n in zip(u["axes"], spatial)
    )
    nothing = _measured_nothing(units)
    centre = next((u for u in units if u["role"] == "centre"), units[0])
    status = "inconclusive" if nothing else "match" if all(u["ok"] for u in units) else "mismatch"
    return {
        "ok": status == "match",
        "status": status,
        "conclusive": not (whole or nothing),
        "axes": centre["axes"],
        "units": units,
    }


def _measured_nothing(units: list[dict[str, Any]]) -> bool:
    """No gradient reached the input for any unit, though the algebra says some unit reads
    input positions: the probe saw nothing, which must never pass as a match. (One border unit
    that measures nothing is possible: its every path may read only padding.) Its axes say
    ``nothing`` and its units are not ok."""
    if any(a["measured"] is not None for u in units for a in u["axes"]):
        return False
    reads = [u for u in units if all(a["computed_in_input"] is not None for a in u["axes"])]
    for u in reads:
        u["ok"] = False
        for a in u["axes"]:
            a["match"] = "nothing"
    return bool(reads)


def _clip(bounds: tuple[int, int], n: int) -> list[int] | None:
    lo, hi = max(bounds[0], 0), min(bounds[1], n - 1)
    return [lo, hi] if lo <= hi else None


def _axis(
    unit: int,
    bounds: tuple[int, int],
    clipped: list[int] | None,
    extent: tuple[int, int],
    loose: bool,
) -> dict[str, Any]:
    measured = None if extent[0] < 0 else list(extent)
    if measured == clipped:
        match = "exact"
    elif loose and (
        measured is None or (clipped and clipped[0] <= measured[0] <= measured[1] <= clipped[1])
    ):
        match = "inside"
    else:
        match = "MISMATCH"
    return {
        "unit": unit,
        "computed": list(bounds),
        "computed_in_input": clipped,
        "measured": measured,
        "match": match,
    }
