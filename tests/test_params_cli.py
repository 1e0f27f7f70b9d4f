"""`cnnkit params`: JSON schema, totals, memory model, gates, exports, --verify, external
models and start-up hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from cnnkit.analysis.memory import DTYPE_BYTES, OPTIMIZER_STATES, training_memory
from cnnkit.layers import LAYERS
from tests.clitools import run_cli

ROOT = Path(__file__).resolve().parent.parent
LAYER_KEYS = {
    "name", "kind", "output", "params", "trainable", "buffers", "macs", "flops", "ops",
    "activations", "activation_bytes",
}  # fmt: skip


def params_json(*args: str) -> dict:
    r = run_cli("params", *args, "--json")
    assert r.code == 0, r.err
    assert r.err == ""
    return json.loads(r.out)


def test_json_schema_keys_are_stable():
    doc = params_json("lenet")
    assert set(doc) == {
        "model", "source", "input", "output", "batch", "dtype", "convention", "totals",
        "memory", "layers",
    }  # fmt: skip
    assert set(doc["totals"]) == LAYER_KEYS - {"name", "kind", "output"}
    assert set(doc["memory"]) == {
        "dtype", "optimizer", "bytes_per_element", "weights", "gradients", "optimizer_state",
        "activations", "total", "activations_basis", "assumptions",
    }  # fmt: skip
    assert {"macs", "flops", "ops", "ops_rules"} <= set(doc["convention"])
    assert set(doc["convention"]["ops_rules"]) == set(LAYERS)
    assert all(set(layer) == LAYER_KEYS for layer in doc["layers"])


def test_resnet50_matches_torchvision_published_numbers():
    doc = params_json("recipes/resnet50.yaml")
    assert doc["totals"]["params"] == 25_557_032  # torchvision's resnet50 weights
    assert doc["totals"]["macs"] == 4_089_184_256  # torchvision's "4.09 GFLOPS"
    assert doc["totals"]["flops"] == 2 * doc["totals"]["macs"]
    assert "bias excluded" in doc["convention"]["macs"]


@pytest.mark.parametrize("name", ["alexnet", "googlenet", "densenet121", "textcnn", "lenet1998"])
def test_totals_are_the_sum_of_the_layers(name):
    doc = params_json(name)
    for key in ("params", "trainable", "buffers", "macs", "ops", "activations"):
        assert doc["totals"][key] == sum(layer[key] for layer in doc["layers"]), key
    for layer in doc["layers"]:
        assert layer["flops"] == 2 * layer["macs"]
        assert layer["activation_bytes"] == 4 * layer["activations"]


def test_batch_and_dtype_scale_costs_not_parameters():
    one = params_json("resnet18")
    four = params_json("resnet18", "--batch", "4", "--dtype", "fp16")
    for key in ("macs", "flops", "ops", "activations"):
        assert four["totals"][key] == 4 * one["totals"][key], key
    assert four["totals"]["params"] == one["totals"]["params"]
    assert four["totals"]["activation_bytes"] == 2 * four["totals"]["activations"]


@pytest.mark.parametrize("optimizer", list(OPTIMIZER_STATES))
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_memory_estimate_follows_the_stated_model(optimizer, dtype):
    doc = params_json("resnet18", "--optimizer", optimizer, "--dtype", dtype, "-b", "2")
    t, m, size = doc["totals"], doc["memory"], DTYPE_BYTES[dtype]
    assert m["weights"] == (t["params"] + t["buffers"]) * size
    assert m["gradients"] == t["trainable"] * size
    assert (
        m["optimizer_state"]
        == {"sgd": 1, "adam": 2, "sgd-nomomentum": 0}[optimizer] * t["trainable"] * size
    )
    # the activation term is checked against autograd in test_memory_vs_autograd.py
    assert m["total"] == m["weights"] + m["gradients"] + m["optimizer_state"] + m["activations"]
    assert "autograd saves for backward" in m["assumptions"]


def test_memory_model_is_pure_arithmetic():
    m = training_memory(trainable=10, frozen=3, activation_elements=100, optimizer="adam")
    assert (m.weights, m.gradients, m.optimizer_state, m.activations) == (52, 40, 80, 400)


def test_depth_groups_rows_by_name_prefix():
    full = params_json("resnet50")
    grouped = params_json("resnet50", "--depth", "2")
    r = run_cli("params", "resnet50", "--depth", "1")
    assert r.code == 0 and "layer3.*" in r.out and "layer3.1.conv2" not in r.out
    assert grouped["totals"] == full["totals"]  # --depth changes the view, not the counts
    assert grouped["layers"] == full["layers"]


def test_table_shows_every_node_totals_memory_and_conventions():
    r = run_cli("params", "resnet50")
    assert r.code == 0, r.err
    assert "layer3.1.conv2" in r.out and "25,557,032" in r.out and "4,089,184,256" in r.out
    assert "training memory" in r.out and "bias excluded" in r.out
    assert all(len(line) < 400 for line in r.out.splitlines()[:60])  # rows not squeezed


BUDGETS = [
    (
        ["--max-params", "5M"],
        "params 25,557,032 exceeds --max-params 5,000,000 by 20,557,032 (5.1x)",
    ),
    (
        ["--max-macs", "1.2G"],
        "MACs 4,089,184,256 exceeds --max-macs 1,200,000,000 by 2,889,184,256 (3.4x)",
    ),
]


@pytest.mark.parametrize(("args", "line"), BUDGETS)
@pytest.mark.parametrize("as_json", [False, True])
def test_gate_exceeded_prints_output_then_one_line_exit_1(args, line, as_json):
    r = run_cli("params", "recipes/resnet50.yaml", *args, *(["--json"] if as_json else []))
    assert r.code == 1
    assert r.err.strip().splitlines() == [f"error: {line}"]
    if as_json:
        assert json.loads(r.out)["totals"]["params"] == 25_557_032
    else:
        assert "training memory" in r.out


def test_memory_gate_names_the_budget_and_the_excess():
    doc = params_json("resnet50")
    total = doc["memory"]["total"]
    r = run_cli("params", "resnet50", "--max-memory", "100MiB")
    assert r.code == 1
    (line,) = r.err.strip().splitlines()
    assert f"training memory {total:,} B" in line
    assert f"exceeds --max-memory 100MiB (104,857,600 B) by {total - 104_857_600:,} B" in line


def test_gates_within_budget_exit_0():
    r = run_cli("params", "resnet50", "--max-params", "2.6e7", "--max-macs", "5G")
    assert r.code == 0, r.err
    r = run_cli("params", "resnet50", "--max-memory", "1.5GB", "--json")
    assert r.code == 0 and json.loads(r.out)


def test_several_budgets_exceeded_still_one_line():
    r = run_cli("params", "vgg16", "--max-params", "1M", "--max-macs", "1M", "--json")
    assert r.code == 1
    (line,) = r.err.strip().splitlines()
    assert "--max-params" in line and "--max-macs" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope"], "no recipe file or built-in recipe named 'nope'"),
        (["resnet50", "--batch", "0"], "--batch"),
        (["resnet50", "--batch", "x"], "--batch"),
        (["resnet50", "--batch", "2x2"], "--batch"),
        (["resnet50", "--set", "model.foo=1"], "--set"),
        (["resnet50", "--set", "nokey"], "--set"),
        (["resnet50", "--max-params", "lots"], "--max-params"),
        (["resnet50", "--max-macs", "-5"], "--max-macs"),
        (["resnet50", "--max-memory", "1.5XB"], "--max-memory"),
        (["resnet50", "--dtype", "fp8"], "--dtype"),
        (["resnet50", "--optimizer", "adamw2"], "--optimizer"),
        (["resnet50", "--depth", "0"], "--depth"),
        (["resnet50", "--json", "--csv", "-"], "stdout"),
        (["timm:resnet50", "--verify"], "--verify"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    r = run_cli("params", *args)
    assert r.code == 2, r
    assert r.out == "" and "Traceback" not in r.err
    (line,) = r.err.strip().splitlines()
    assert needle in line


def test_missing_torchvision_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        r = run_cli("params", "torchvision:resnet50")
        assert r.code == 2
        assert "pip install" in r.err and len(r.err.strip().splitlines()) == 1
    else:
        pytest.skip("torchvision is installed")


def test_csv_and_markdown_exports_read_back_with_pandas(tmp_path):
    doc = params_json("googlenet")
    csv, md = tmp_path / "layers.csv", tmp_path / "layers.md"
    r = run_cli("params", "googlenet", "--csv", str(csv), "--markdown", str(md))
    assert r.code == 0, r.err
    frame = pd.read_csv(csv)
    assert list(frame.columns) == [*LAYER_KEYS_ORDER]
    assert frame["name"].tolist() == [layer["name"] for layer in doc["layers"]]
    assert frame["macs"].sum() == doc["totals"]["macs"]
    table = pd.read_csv(md, sep="|", skiprows=[1], skipinitialspace=True)
    table = table.loc[:, [c for c in table.columns if not c.startswith("Unnamed")]]
    table.columns = [c.strip() for c in table.columns]
    assert [n.strip() for n in table["name"]] == frame["name"].tolist()
    assert table["params"].sum() == doc["totals"]["params"]


LAYER_KEYS_ORDER = (
    "name", "kind", "output", "params", "trainable", "buffers", "macs", "flops", "ops",
    "activations", "activation_bytes",
)  # fmt: skip


def test_export_to_stdout_is_the_export_only():
    r = run_cli("params", "lenet", "--csv", "-")
    assert r.code == 0
    assert r.out.splitlines()[0] == ",".join(LAYER_KEYS_ORDER)
    assert "training memory" not in r.out
    r = run_cli("params", "lenet", "--markdown", "-")
    assert r.code == 0 and r.out.startswith("| name")


def test_verify_lenet1998_explains_every_difference_and_exits_0():
    r = run_cli("params", "lenet1998", "--verify")
    assert r.code == 0, r.err
    assert "verify: OK" in r.out
    assert "parameters        analysis          60,000   module          60,000   match" in r.out
    for name in ("c3 (partial_conv)", "s2 (subsample)", "output (rbf)"):
        assert f"explained: {name}" in r.out
    assert "aten::sub" in r.out  # fvcore's unsupported ops are shown


def test_verify_json_on_resnet18_matches_exactly():
    doc = params_json("resnet18", "--verify")
    v = doc["verify"]
    assert v["ok"] and v["differences"] == []
    assert v["params"]["analysis"] == v["params"]["module"] == 11_689_512
    assert v["macs"]["analysis"] == v["macs"]["fvcore"] == 1_814_073_344
    assert v["fvcore_other_ops"]["batch_norm"] > 0  # counted by fvcore, not a MAC here


def test_verify_exits_1_on_an_unexplained_difference(monkeypatch):
    from cnnkit.measure import verify as counting

    monkeypatch.delitem(counting.EXPLAINED, "rbf")
    r = run_cli("params", "lenet1998", "--verify")
    assert r.code == 1
    assert "UNEXPLAINED: output (rbf)" in r.out
    assert r.err.strip().splitlines() == [
        "error: --verify: 1 unexplained difference(s), first: output macs 840 vs 0 (fvcore)"
    ]


def test_external_models_count_unique_parameters_and_every_call(monkeypatch):
    """A stand-in for torchvision: a conv used twice counts its weights once, MACs twice."""
    import torch
    from torch import nn

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(3)
            self.head = nn.Linear(3, 5)
            self.head.bias.requires_grad_(False)
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            x = self.bn(self.conv(self.conv(x))) * self.scale
            return self.head(x.mean((2, 3)))

    models = types.ModuleType("torchvision.models")
    models.get_model = lambda name, **kw: Shared()
    package = types.ModuleType("torchvision")
    package.models = models
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    doc = params_json("torchvision:shared", "--input", "3x8x8", "--batch", "2")
    t = doc["totals"]
    assert t["params"] == 81 + 6 + 20 + 1 and t["trainable"] == t["params"] - 5
    assert t["buffers"] == 7
    assert t["macs"] == 2 * (2 * 3 * 3 * 9 * 64) + 2 * 15  # conv twice per sample, batch 2
    rows = {layer["name"]: layer for layer in doc["layers"]}
    assert rows["conv"]["params"] == 81 and rows["conv"]["output"] == [3, 8, 8]
    assert rows["(root)"]["params"] == 1 and rows["conv"]["ops"] is None
    assert doc["model"] == "torchvision:shared" and doc["convention"]["ops_rules"] is None


HEAVY = ("torch", "pandas", "fvcore", "numpy")


@pytest.mark.parametrize("extra", [["--json"], [], ["--depth", "2", "--max-params", "1G"]])
def test_params_on_a_recipe_imports_no_heavy_module(extra):
    args = ["params", "recipes/resnet50.yaml", *extra]
    code = (
        "import sys\nfrom cnnkit.cli.app import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "HEAVY []" in done.stdout, done.stdout[-300:]


def test_help_states_conventions_and_points_at_the_ops_rules():
    r = run_cli("params", "--help")
    assert r.code == 0
    flat = " ".join(r.out.split())
    assert "with the bias excluded" in flat and "FLOPs = 2 x MACs" in flat
    assert 'torchvision\'s published "GFLOPS"' in flat
    # the per-kind ops rules moved out of --help (issue 12): into the generated reference
    assert "docs/reference/ops.md" in flat


def test_reference_lists_every_kinds_ops_rule_and_the_schema():
    ops = (ROOT / "docs" / "reference" / "ops.md").read_text(encoding="utf-8")
    for kind in LAYERS:
        assert f"| `{kind}` |" in ops, kind
    text = (ROOT / "docs" / "reference" / "json.md").read_text(encoding="utf-8")
    section = text[text.index("## `cnnkit params`") : text.index("## `cnnkit profile`")]
    for key in ("activation_bytes", "optimizer_state", "ops_rules"):
        assert key in section
