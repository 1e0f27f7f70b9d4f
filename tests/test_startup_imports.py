"""Start-up: each command imports only what it needs (issue 12).

``cnnkit conv`` and ``cnnkit rf --layers`` import neither pydantic (typer's option coercion,
~100 ms) nor torch, pandas, numpy, nor the other commands' modules. The fast option coercion
that makes this possible (``cnnkit.cli.coercion``) must agree with typer's own, pydantic-based
coercion on every value it accepts and hand every other value to it: typer is the oracle here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pydantic", "pydantic_core", "torch", "pandas", "numpy", "fvcore")
OTHER_COMMANDS = {
    "conv": "cnnkit.cli.conv",
    "rf": "cnnkit.cli.rf",
    "params": "cnnkit.cli.params",
    "profile": "cnnkit.cli.profiling",
    "train": "cnnkit.cli.train",
    "eval": "cnnkit.cli.evaluate",
    "predict": "cnnkit.cli.predict",
    "export": "cnnkit.cli.export",
    "recipes": "cnnkit.cli.recipes",
}


def _modules_after(args: list[str]) -> set[str]:
    """The modules loaded once ``cnnkit ARGS`` has run, in a fresh interpreter."""
    script = (
        "import sys, json\nfrom cnnkit.cli.app import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES ") :]))


@pytest.mark.parametrize(
    "args",
    [
        ["conv", "--input", "3x224x224", "--kernel", "11", "--stride", "4", "-o", "96"],
        ["conv", "-i", "224", "-k", "11", "-s", "4", "--json"],
        ["rf", "--layers", "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2", "--input", "227"],
        ["rf", "--layers", "conv k=3; conv k=3", "--json"],
        ["params", "resnet50", "--json"],
    ],
)
def test_a_command_imports_no_pydantic_torch_pandas_nor_the_other_commands(args):
    loaded = _modules_after(args)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, heavy
    others = sorted(m for name, m in OTHER_COMMANDS.items() if name != args[0] and m in loaded)
    assert not others, others
    assert OTHER_COMMANDS[args[0]] in loaded  # the command did run


def test_the_overview_still_lists_every_command():
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0
    listed = done.stdout[done.stdout.index("Commands:") :]
    for name in OTHER_COMMANDS:
        assert f"\n  {name} " in listed, name


# --- the fast coercion against typer's own ---------------------------------------------

INTS = ["12", "+3", "-0", "007", "-15", " 5", "5 ", "1_000", "1e3", "3.0", "0x10", "", "abc"]
INTS += ["\u0663", "99999999999999999999", "1,000", "--1", "12a"]
FLOATS = ["1.5", ".5", "5.", "-1e-3", "1E5", "+2.25", "7", "inf", "nan", "-inf", "", "1,5"]
FLOATS += ["1_0.5", " 2.5", "0.1.2", "e5", "5e", "1e400", "0x1p3"]
BOOLS = ["true", "False", "YES", "0", "1", "on", "off", "t", "n", " yes ", "maybe", "", "2"]
STRS = ["", "a b", "--x", "ünïcode", "1 2; 3 4", "k=v"]


def _outcome(runtime, value):
    from typer._click.exceptions import BadParameter

    try:
        result = runtime._coerce_value(value, param=None, ctx=None)
    except BadParameter as err:
        return ("error", err.message)
    return ("value", type(result), repr(result))  # repr: nan equals nan


def _descriptor(annotation, **info):
    from typer._coercion import resolve_type_descriptor
    from typer.models import OptionInfo

    return resolve_type_descriptor(annotation, OptionInfo(**info))


@pytest.mark.parametrize(
    ("annotation", "values", "info"),
    [
        (int, INTS, {}),
        (int, ["0", "1", "5", "-3", "x"], {"min": 1}),
        (float, FLOATS, {}),
        (float, ["0.5", "2", "-1"], {"min": 0.0, "max": 1.0}),
        (bool, BOOLS, {}),
        (str, STRS, {}),
        (list[str], [["a", "b"], [], ["k=v", ""], ("x", "y")], {}),
        (list[int], [["1", "2"], ["1", "x"], []], {}),
        (Path, ["x.png", "/", "", "no/such/dir/file"], {}),
        (Path, ["/", "no/such/file"], {"exists": True}),
    ],
)
def test_fast_coercion_gives_what_typer_gives(annotation, values, info):
    from typer import _coercion

    from cnnkit.cli import coercion

    assert coercion.install()
    import typer.core

    fast = typer.core.build_runtime_param(_descriptor(annotation, **info))
    slow = _coercion.build_runtime_param(_descriptor(annotation, **info))
    assert type(fast).__name__ == "FastRuntimeParam", type(fast)  # the fast path is in use
    assert type(slow).__name__ != "FastRuntimeParam"
    for value in values:
        assert _outcome(fast, value) == _outcome(slow, value), value


def test_the_fast_path_leaves_a_custom_parser_to_typer():
    import typer.core

    from cnnkit.cli import coercion

    coercion.install()
    runtime = typer.core.build_runtime_param(_descriptor(int, parser=lambda text: int(text) * 2))
    assert type(runtime).__name__ != "FastRuntimeParam"
    assert runtime._coerce_value("21", param=None, ctx=None) == 42
