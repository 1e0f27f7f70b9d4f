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
    assert doc["verify"]["ok"] is True
    assert all(axis["match"] == "exact" for axis in doc["verify"]["axes"])
    from PIL import Image

    with Image.open(png) as image:
        assert image.size[0] >= 256
    assert len(doc["erf"]["mass_95_size"]) == 2


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
