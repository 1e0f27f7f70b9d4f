"""Loading recipes and listing them stays free of torch, pandas and numpy (fast commands)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "pandas", "numpy", "fvcore")


def _modules_after(code: str) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_loading_and_analysing_recipes_imports_no_torch():
    loaded = _modules_after(
        "import cnnkit\nfrom cnnkit.analysis import totals\n"
        "for name in ('resnet50', 'densenet121', 'textcnn'):\n"
        "    totals(cnnkit.load_recipe(name).graph)\n"
    )
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_cnnkit_recipes_command_imports_no_torch():
    loaded = _modules_after(
        "from cnnkit.cli.app import main\n"
        "try:\n    main(['recipes', '--json'])\nexcept SystemExit:\n    pass\n"
    )
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]


def test_cnnkit_recipes_lists_every_builtin_as_json(capsys):
    from cnnkit.cli.app import main
    from cnnkit.recipe import builtin_recipes

    main(["recipes", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(builtin_recipes())
    assert {r["name"]: r["params"] for r in rows}["resnet50"] == 25_557_032


def test_cnnkit_recipes_prints_one_line_per_recipe(capsys):
    from cnnkit.cli.app import main
    from cnnkit.recipe import builtin_recipes

    main(["recipes"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(builtin_recipes())
    assert lines[0].split()[0] == "alexnet" and "61,100,840" in lines[0]
