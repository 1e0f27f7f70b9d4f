"""The CLI contract shared by every command: version, help, JSON, errors, --debug."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cnnkit import __version__
from tests.clitools import run_cli


def test_version():
    r = run_cli("--version")
    assert r.code == 0
    assert r.out.strip() == f"cnnkit {__version__}"


def test_help_shows_an_example_for_every_command():
    r = run_cli("--help")
    assert r.code == 0
    from cnnkit.cli.app import app

    for command in app.registered_commands:
        assert re.search(rf"^\s+cnnkit {command.name}\b", r.out, re.MULTILINE), command.name


def test_python_dash_m_works():
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"cnnkit {__version__}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["conv", "--input", "28", "--kernel", "a"], "--kernel"),
        (["conv", "--input", "28", "--kernel", "3", "--stride", "0"], "--stride"),
        (["conv", "--input", "0x5", "--kernel", "3"], "--input"),
        (["conv", "--input", "-4", "--kernel", "3"], "--input"),
        (["conv", "--input", "4", "--kernel", "5"], "kernel spans 5"),
        (["conv", "--input", "28", "--kernel", "3", "--padding", "middle"], "--padding"),
        (["conv", "--input", "28", "--kernel", "3", "--layer", "fancy"], "--layer"),
        (["conv", "--input", "3x28x28", "--kernel", "3", "-o", "8", "-g", "2"], "--groups"),
        (["conv", "--input", "28x28", "--kernel", "3", "-o", "8"], "--out-channels"),
        (["conv", "--input", "28", "--kernel", "3x3x3x3"], "--kernel"),
        (["conv", "--input", "2x3x4x5x6", "--kernel", "3"], "--input"),
        (["conv", "-i", "9", "-k", "3", "-l", "maxpool", "-p", "2"], "half the kernel"),
        (["conv", "-i", "9", "-k", "3", "-l", "deconv", "--output-padding", "1"], "output_padding"),
        (["conv", "-i", "9", "-k", "3", "--target", "0"], "--target"),
        (["conv", "--nope"], "--nope"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(args, needle):
    r = run_cli(*args)
    assert r.code == 2, r
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert "Traceback" not in r.err
    assert any(needle in line for line in lines), r.err
    assert len(lines) == 1, r.err


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="--kernel"):
        from cnnkit.cli.app import main

        main(["conv", "--input", "28", "--kernel", "a", "--debug"])


def test_json_is_one_document_and_nothing_else():
    r = run_cli("conv", "--input", "3x224x224", "--kernel", "11", "--stride", "4", "--json")
    assert r.code == 0
    doc = json.loads(r.out)
    assert doc["output"][1:] == [54, 54]
    assert r.err == ""


def test_conv_imports_no_heavy_modules():
    """`cnnkit conv` must start fast: torch, pandas, fvcore and numpy stay out."""
    code = (
        "import sys\n"
        "from cnnkit.cli.app import main\n"
        "try:\n"
        "    main(['conv', '-i', '3x224x224', '-k', '11', '-s', '4', '-o', '96'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'pandas', 'fvcore', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout, done.stdout


def test_an_unwritable_output_is_one_line_not_a_traceback(tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "x.csv"
    r = run_cli("profile", "lenet", "--device", "cpu", "--batch", "1", "--iters", "1",
                "--warmup", "0", "--csv", str(missing))  # fmt: skip
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.strip().splitlines()[-1].startswith("error: ") and "No such file" in r.err


def test_train_never_replaces_a_run_unasked(tmp_path):
    out = tmp_path / "run"
    first = run_cli("train", "lenet", "--out", str(out), "--set", "train.epochs=1", "--json")
    assert first.code == 0, first.err
    before = (out / "best.pt").read_bytes()
    again = run_cli("train", "lenet", "--out", str(out), "--set", "train.epochs=1")
    assert again.code == 2 and "already holds a run" in again.err and "--overwrite" in again.err
    assert (out / "best.pt").read_bytes() == before
    replaced = run_cli(
        "train", "lenet", "--out", str(out), "--set", "train.epochs=1", "--overwrite", "--json"
    )
    assert replaced.code == 0, replaced.err
