"""`cnnkit rf`: the JSON contract, published values, --verify/--erf, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.clitools import run_cli


def rf_json(*args: str) -> dict:
    r = run_cli("rf", *args, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_two_3x3_convs_see_what_one_5x5_sees():
    two = rf_json("--layers", "conv k=3 p=1; conv k=3 p=1", "--input", "32x32")
    one = rf_json("--layers", "conv k=5 p=2", "--input", "32x32")
    assert two["receptive_field"] == one["receptive_field"] == [5, 5]
    assert two["padding"] == one["padding"] == [2, 2]


def test_json_contract():
    doc = rf_json("--layers", "conv k=3x5 s=2; maxpool k=2; conv k=3 d=2", "--input", "3x64x64")
    assert doc["receptive_field"] == [3 + 1 * 2 + 4 * 4, 5 + 1 * 2 + 4 * 4]
    assert doc["stride"] == [4, 4]
    for key in ("receptive_field", "stride", "padding"):
        assert isinstance(doc[key], list) and len(doc[key]) == 2
    for layer in doc["layers"]:
        assert {"name", "kind", "output", "receptive_field", "stride", "padding"} <= set(layer)
    assert [layer["kind"] for layer in doc["layers"]] == ["conv", "maxpool", "conv"]


def test_vgg16_matches_the_published_table():
    # Araujo et al. (Distill 2019), table of receptive fields: vgg_16 r=212, S=32, P=90.
    doc = rf_json("vgg16")
    assert doc["receptive_field"] == [212, 212]
    assert doc["stride"] == [32, 32]
    assert doc["padding"] == [90, 90]
    assert doc["output_sees_all"] is True


def test_multi_path_reports_largest_and_smallest():
    doc = rf_json("resnet18")
    at = doc["at"]
    assert at["receptive_field"] == [435, 435]
    assert at["receptive_field_min"] == [11, 11]  # conv1 + maxpool, then identities only
    assert at["aligned"] is True


def test_input_override_says_when_the_field_exceeds_the_input():
    doc = rf_json("vgg16", "--input", "64x64")
    assert doc["input"] == [3, 64, 64]
    assert doc["at"]["exceeds_input"] == [True, True]
    assert doc["at"]["full_units"] == 0


def test_verify_and_erf(tmp_path):
    png = tmp_path / "erf.png"
    doc = rf_json("lenet", "--verify", "--erf", str(png))
    v = doc["verify"]
    assert v["ok"] is True and v["conclusive"] is True and v["status"] == "match"
    assert all(axis["match"] == "exact" for axis in v["axes"])
    # More than the centre: a corner (clipped by the border) and a unit whose field lies
    # inside the input, which must match exactly.
    roles = {u["role"] for u in v["units"]}
    assert "corner" in roles and "centre" in roles
    assert any(u["field_inside"] for u in v["units"])
    for u in v["units"]:
        if u["field_inside"]:
            assert all(a["match"] == "exact" for a in u["axes"])
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] >= 256
    assert len(doc["erf"]["mass_95_size"]) == 2


def _recipe_file(tmp_path, layers, n) -> str:
    import yaml

    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"input": [1, *n], "model": {"layers": layers}}))
    return str(path)


def _parallel(a, b, merge="add"):
    return {"parallel": {"branches": [a, b], "merge": merge}}


MERGED = {
    # Inception-v3's factorised 1x7 / 7x1 branches: padding 3 along both axes, not one
    # path's (3, 0) for both.
    "non-square": [
        _parallel(
            [{"conv": {"out": 1, "k": [1, 7], "p": [0, 3]}}],
            [{"conv": {"out": 1, "k": [7, 1], "p": [3, 0]}}],
            "concat",
        ),
        {"conv": {"out": 1, "k": [3, 5], "s": 2}},
    ],
    # Two 2x2 `same` convs (the field moves right) beside a 3x3: the union is wider than
    # either path.
    "offset": [
        _parallel(
            [{"conv": {"out": 2, "k": 2, "p": "same"}}, {"conv": {"out": 2, "k": 2, "p": "same"}}],
            [{"conv": {"out": 2, "k": 3, "p": "same"}}],
        ),
        {"conv": {"out": 2, "k": 3, "s": 2}},
        {"conv": {"out": 2, "k": 3, "s": 2}},
    ],
}


@pytest.mark.parametrize("name", sorted(MERGED))
def test_json_field_of_merged_paths_matches_a_gradient_probe(tmp_path, name):
    from cnnkit.recipe import load_recipe
    from tests.test_rf_graphs import _measure

    path = _recipe_file(tmp_path, MERGED[name], (40, 40))
    doc = rf_json(path)
    at = doc["at"]
    unit = tuple(o // 2 for o in at["output"])
    (measured,), _ = _measure(load_recipe(path), [unit])
    for axis, got in enumerate(measured):
        start = unit[axis] * at["stride"][axis] - at["padding"][axis]
        assert start >= 0 and start + at["receptive_field"][axis] <= 40  # inside: exact
        assert got == (start, start + at["receptive_field"][axis] - 1), (axis, at)


def test_verify_exits_1_on_a_mismatch(monkeypatch):
    import cnnkit.measure.gradient_probe as probe

    real = probe.measure_extents

    def off_by_one(recipe, node, units, seed=0):
        extents, notes = real(recipe, node, units, seed)
        moved = [probe.Extent(e.unit, e.first, tuple(v - 1 for v in e.last)) for e in extents]
        return moved, notes

    monkeypatch.setattr(probe, "measure_extents", off_by_one)
    for extra in ([], ["--json"]):
        r = run_cli("rf", "lenet", "--verify", *extra)
        assert r.code == 1, r.err
        assert "MISMATCH" in r.out and "--verify" in r.err and "Traceback" not in r.err
        assert len(r.err.strip().splitlines()) == 1
    assert json.loads(r.out)["verify"]["ok"] is False
    assert json.loads(r.out)["verify"]["status"] == "mismatch"


def test_verify_says_when_every_field_covers_the_whole_input():
    doc = rf_json(
        "--layers", "conv k=7 p=3; conv k=7 p=3; conv k=7 p=3", "--input", "6x6", "--verify"
    )
    assert doc["verify"]["ok"] is True and doc["verify"]["conclusive"] is False
    assert any("cannot tell" in note for note in doc["verify"]["notes"])
    r = run_cli(
        "rf", "--layers", "conv k=7 p=3; conv k=7 p=3; conv k=7 p=3", "--input", "6x6", "--verify"
    )
    assert r.code == 0 and "inconclusive" in r.out


def test_verify_adaptive_pooling_with_uneven_windows(tmp_path):
    # vgg16 --input 3x200x200 in small: features end at 6x6 (or here 10x10) and the
    # adaptive pooling to 7x7 has windows of 2 and 3 starting at floor(10i/7).
    layers = [
        {"conv": {"out": 1, "k": 3, "p": 1}},
        {"maxpool": 2},
        {"adaptive_avgpool": 7},
    ]
    doc = rf_json(_recipe_file(tmp_path, layers, (20, 20)), "--verify")
    v = doc["verify"]
    assert v["ok"] is True, v
    # conv + maxpool: field 4, jump 2; a window of 2 or 3 of those units: 4 + 2 or 4 + 4.
    assert doc["at"]["varies"] is True and doc["at"]["unit_fields"] == [[6, 8], [6, 8]]
    assert {u["unit"][0] % 7 for u in v["units"]} == set(range(7))  # every window shape
    for u in v["units"]:
        for axis in u["axes"]:
            assert axis["match"] == "exact", u


def test_transposed_conv_fields_are_computed_and_verified(tmp_path):
    layers = [
        {"conv": {"out": 2, "k": 3, "p": 1, "s": 2}},
        {"conv": {"out": 2, "k": 3, "p": 1, "s": 2}},
        {"convtranspose": {"out": 2, "k": 2, "s": 2}},
        {"convtranspose": {"out": 2, "k": 4, "s": 2, "p": 1}},
        {"conv": {"out": 2, "k": 3, "p": 1}},
    ]
    doc = rf_json(_recipe_file(tmp_path, layers, (32, 32)), "--verify")
    at = doc["at"]
    assert at["name"] == "4" and at["stride"] == [1, 1]
    assert [layer["stride"] for layer in doc["layers"]][2:4] == [[2, 2], [1, 1]]
    assert doc["layers"][3]["unknown"] is None
    spans = doc["layers"][-1]["spans"][0]
    assert len(spans) == 1 and spans[0]["period"] == 4
    v = doc["verify"]
    assert v["ok"] is True and v["conclusive"] is True
    assert any(u["field_inside"] for u in v["units"])
    up = rf_json("--layers", "convtranspose k=4 s=2 p=1", "--input", "8")
    assert up["stride"] == [0.5] and up["layers"][0]["spans"][0][0]["period"] == 2


def test_transposed_conv_whose_units_read_nothing_is_unknown():
    doc = rf_json("--layers", "conv k=3; convtranspose k=1 s=2; conv k=3", "--input", "20")
    assert doc["layers"][1]["unknown"] and doc["at"]["name"] == "0"
    r = run_cli(
        "rf", "--layers", "conv k=3; convtranspose k=1 s=2; conv k=3", "--input", "20", "--at", "2"
    )
    assert r.code == 2 and "read no input" in r.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "give a recipe"),
        (["lenet", "--layers", "conv k=3"], "give a recipe"),
        (["lenet", "--at", "cnv1"], "--at: no layer named"),
        (["vgg16", "--at", "classifier.0"], "sees the whole input"),
        (["--layers", "conv k=a"], "--layers item 1 (conv)"),
        (["--layers", "conv k=3; fancy k=2"], "fancy"),
        (["--layers", "conv k=9", "--input", "4x4"], "kernel"),
        (["vgg16", "--input", "1x2x3x4"], "--input"),
        (["nosuchrecipe"], "nosuchrecipe"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    r = run_cli("rf", *args)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1 and needle in r.err, r.err


def test_rf_imports_no_heavy_modules():
    code = (
        "import sys\n"
        "from cnnkit.cli.app import main\n"
        "try:\n"
        "    main(['rf', 'resnet50', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY', [m for m in ('torch', 'pandas', 'fvcore', 'numpy') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout


# Saturating activations (ReLU6, hard sigmoid/swish, GELU after LayerNorm): the probe once
# measured no gradient at all on mobilenet_v2 and called `measured None` a pass at the border.
SATURATING = [
    ("mobilenet_v2", None),  # the output: every unit clipped, the old probe measured nothing
    ("mobilenet_v2", "features.5.add"),
    ("mobilenet_v3_small", None),
    ("efficientnet_b0", None),
    ("convnext_tiny", "features.1.1.add"),
]


@pytest.mark.parametrize(("name", "at"), SATURATING)
def test_verify_measures_through_saturating_activations(name, at):
    extra = ["--at", at] if at else []
    doc = rf_json(name, "--set", "input=[3,64,64]", "--verify", *extra)
    v = doc["verify"]
    assert v["status"] == "match" and v["ok"] is True, v
    for u in v["units"]:
        for axis in u["axes"]:
            assert axis["measured"] is not None, u
            if u["field_inside"]:
                assert axis["match"] == "exact", u
    if at:
        assert v["conclusive"] is True and any(u["field_inside"] for u in v["units"])


def test_verify_that_measures_nothing_is_inconclusive_and_exits_1(monkeypatch):
    import cnnkit.measure.gradient_probe as probe

    real = probe.measure_extents

    def saturated(recipe, node, units, seed=0):
        extents, notes = real(recipe, node, units, seed)
        dims = len(extents[0].first)
        return [probe.Extent(e.unit, (-1,) * dims, (-1,) * dims) for e in extents], notes

    monkeypatch.setattr(probe, "measure_extents", saturated)
    r = run_cli("rf", "lenet", "--verify", "--json")
    assert r.code == 1, r.err
    assert len(r.err.strip().splitlines()) == 1 and "inconclusive" in r.err
    v = json.loads(r.out)["verify"]
    assert v["status"] == "inconclusive" and v["ok"] is False and v["conclusive"] is False
    assert all(a["match"] == "nothing" for u in v["units"] for a in u["axes"])
    r = run_cli("rf", "lenet", "--verify")
    assert r.code == 1 and "nothing measured" in r.out and "Traceback" not in r.err


def test_a_border_unit_reading_only_padding_is_not_inconclusive():
    from cnnkit.analysis.rf_verify import Probe, verdict

    # conv k=3 p=1, then conv k=1 p=1 on 8 positions: unit 0 reads only padding, although its
    # clipped field [0, 0] is not empty; the centre unit measures its field.
    probes = [Probe("corner", (0,), ((-2, 0),)), Probe("centre", (5,), ((3, 5),))]
    assert verdict(probes, [((-1, -1),), ((3, 5),)], (8,))["status"] == "match"
    nothing = verdict(probes, [((-1, -1),), ((-1, -1),)], (8,))
    assert nothing["status"] == "inconclusive" and nothing["ok"] is False
