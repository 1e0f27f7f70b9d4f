"""cnnkit.reports called as a library (no CLI runner): every number against an independent
oracle (torch layers, torch's own FLOP counter, gradients, published counts), and each
command's ``--json`` output is byte for byte the report's JSON."""

from __future__ import annotations

import math

import pytest

from cnnkit import reports
from cnnkit.errors import BudgetExceeded, InputError
from cnnkit.jsonsafe import dumps
from cnnkit.recipe import builtin_recipes, load_recipe
from cnnkit.targets import layers_recipe

torch = pytest.importorskip("torch")
nn = torch.nn


def _macs(module, x) -> int:
    """Multiply-accumulates of conv/linear layers by torch's FlopCounterMode (2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


CONV_CASES = [  # (conv_report arguments, the torch layer, input shape with channels)
    (dict(input="3x32x32", kernel=3, out_channels=8), nn.Conv2d(3, 8, 3), (3, 32, 32)),
    (
        dict(input=(4, 17, 23), kernel="3x5", stride=2, padding="1x2", dilation=2,
             out_channels=6, groups=2),
        nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=2),
        (4, 17, 23),
    ),
    (dict(input="2x50", kernel=7, stride=3, padding=3, out_channels=5, dims=1),
     nn.Conv1d(2, 5, 7, stride=3, padding=3), (2, 50)),
    (dict(input="2x9x10x11", kernel=3, padding=1, out_channels=3),
     nn.Conv3d(2, 3, 3, padding=1), (2, 9, 10, 11)),
    (dict(input="6x7x7", kernel=4, stride=2, padding=1, layer="deconv", output_padding=1,
          out_channels=4, groups=2),
     nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, output_padding=1, groups=2), (6, 7, 7)),
    (dict(input="3x15x15", kernel=3, stride=2, layer="maxpool", ceil_mode=True),
     nn.MaxPool2d(3, stride=2, ceil_mode=True), (3, 15, 15)),
    (dict(input="3x15x15", kernel=4, padding=1, layer="avgpool"),
     nn.AvgPool2d(4, padding=1), (3, 15, 15)),
]  # fmt: skip


@pytest.mark.parametrize(("args", "layer", "shape"), CONV_CASES)
def test_conv_report_matches_the_torch_layer(args, layer, shape):
    report = reports.conv_report(**args)
    x = torch.zeros(1, *shape)
    assert report["output"] == list(layer(x).shape[1:])
    assert report["input"] == list(shape)
    if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d):
        p = report["params"]
        assert p["total_with_bias"] == sum(t.numel() for t in layer.parameters())
        assert p["weights"] == layer.weight.numel()
        assert report["macs"] == _macs(layer, x) and report["flops"] == 2 * report["macs"]
    else:
        assert report["params"] is None and report["macs"] is None


def test_conv_report_takes_ints_and_tuples_as_the_cli_takes_text():
    typed = reports.conv_report((3, 224, 224), 7, stride=2, padding=3, out_channels=64)
    assert typed == reports.conv_report("3x224x224", "7", stride="2", padding="3", out_channels=64)


def test_every_solution_of_a_target_search_gives_the_target_in_torch():
    report = reports.conv_report("1x20x20", 3, target=10)
    solutions = report["axes"][0]["solutions"]
    assert solutions and report["target"] == [10, 10]
    for sol in solutions:
        lo, hi = sol["padding"]
        x = torch.nn.functional.pad(torch.zeros(1, 1, 20, 20), (lo, hi, lo, hi))
        out = nn.Conv2d(1, 1, 3, stride=sol["stride"])(x)
        assert tuple(out.shape[2:]) == (10, 10), sol


def test_conv_report_refuses_bad_combinations():
    with pytest.raises(InputError, match="--out-channels applies to conv"):
        reports.conv_report("3x8x8", 2, layer="maxpool", out_channels=4)
    with pytest.raises(InputError, match="--layer: unknown layer"):
        reports.conv_report("8", 2, layer="dense")


@pytest.mark.parametrize("xcorr", [False, True])
def test_numeric_report_is_torchs_convolution(xcorr):
    x = [[1, 2, 0, -1], [3, 1, 4, 1], [0, 5, 9, 2], [6, 5, 3, 5]]
    w = [[1, -2], [0.5, 3]]
    doc = reports.numeric_report(
        "; ".join(" ".join(map(str, r)) for r in x),
        "; ".join(" ".join(map(str, r)) for r in w),
        bias="0.25",
        xcorr=xcorr,
        padding=1,
        stride=2,
        explain="1,1",
    )
    kernel = torch.tensor(w, dtype=torch.float64)
    kernel = kernel if xcorr else kernel.flip(0, 1)
    expected = torch.nn.functional.conv2d(
        torch.tensor(x, dtype=torch.float64)[None, None],
        kernel[None, None],
        torch.tensor([0.25], dtype=torch.float64),
        stride=2,
        padding=1,
    )[0, 0]
    assert doc["output_shape"] == list(expected.shape)
    assert torch.allclose(torch.tensor(doc["output"], dtype=torch.float64), expected)
    assert math.isclose(doc["explain"]["value"], float(expected[1, 1]))
    assert doc["operation"] == ("cross-correlation" if xcorr else "convolution")


def _gradient_extent(net, shape, unit):
    """Input rows/columns that reach output ``unit`` (all-ones weights): the measured field."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
    x = torch.ones(1, *shape, requires_grad=True)
    net(x)[0, 0, unit[0], unit[1]].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(dim=(0, 2))).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum(dim=(0, 1))).flatten()
    return [int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)]


def test_rf_report_fields_are_the_measured_gradient_extent():
    recipe = layers_recipe("conv k=3; conv k=3 s=2; conv k=5 d=2; conv k=3x1 s=2", "1x64x64")
    net = nn.Sequential(
        nn.Conv2d(1, 1, 3, bias=False),
        nn.Conv2d(1, 1, 3, stride=2, bias=False),
        nn.Conv2d(1, 1, 5, dilation=2, bias=False),
        nn.Conv2d(1, 1, (3, 1), stride=2, bias=False),
    )
    report = reports.rf_report(recipe)
    at = report["at"]
    assert at["output"] == list(net(torch.zeros(1, 1, 64, 64)).shape[2:])
    assert at["receptive_field"] == _gradient_extent(net, (1, 64, 64), (5, 5))
    assert at["stride"] == [4, 4]  # the product of the strides


def test_rf_report_takes_a_name_and_refuses_a_model_without_layers(tmp_path):
    assert reports.rf_report("lenet", at="c3") == reports.rf_report(load_recipe("lenet"), at="c3")
    path = tmp_path / "tv.yaml"
    path.write_text("input: [3, 32, 32]\nmodel: {torchvision: resnet18}\n")
    with pytest.raises(InputError, match="rf needs a recipe with layers"):
        reports.rf_report(str(path))


@pytest.mark.parametrize("name", ["lenet", "resnet18"])
def test_params_report_counts_what_torch_builds(name):
    import cnnkit

    recipe = load_recipe(name)
    module = cnnkit.build(recipe).eval()
    doc = reports.params_report(recipe, batch=2)
    weights = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    assert doc["totals"]["params"] == weights == doc["totals"]["trainable"]
    assert doc["memory"]["gradients"] == 4 * weights  # fp32, one gradient per weight
    assert doc["memory"]["weights"] == 4 * (weights + doc["totals"]["buffers"])
    assert doc["totals"]["buffers"] <= buffers + sum(  # BN's int64 step counter may be left out
        b.numel() for b in module.buffers() if not b.is_floating_point()
    )
    assert doc["totals"]["macs"] == _macs(module, torch.zeros(2, *recipe.input_shape))
    assert (doc["model"], doc["batch"], doc["input"]) == (name, 2, list(recipe.input_shape))


def test_params_report_matches_the_published_resnet50_and_takes_a_name():
    doc = reports.params_report("resnet50", batch=8, dtype="fp16", optimizer="adam")
    assert doc["totals"]["params"] == 25_557_032  # torchvision's resnet50
    assert doc["memory"]["optimizer_state"] == 2 * 2 * 25_557_032  # adam: 2 moments, 2 bytes
    one = reports.params_report("resnet50", dtype="fp16", optimizer="adam")
    assert doc["totals"]["macs"] == 8 * one["totals"]["macs"]


def test_params_gates_name_the_budget_exceeded():
    doc = reports.params_report("lenet")
    reports.params.check_budgets(doc, max_params=61_706, max_memory=1e9)
    with pytest.raises(BudgetExceeded, match="params 61,706 exceeds --max-params 60,000 by 1,706"):
        reports.params.check_budgets(doc, max_params=60_000)
    with pytest.raises(InputError, match="--dtype"):
        reports.params_report("lenet", dtype="fp8")


def test_recipes_report_lists_every_builtin_and_checks_one():
    import cnnkit

    rows = reports.recipes_report()
    assert [r["name"] for r in rows] == list(builtin_recipes())
    lenet = reports.recipes_report("lenet")
    built = cnnkit.build(load_recipe("lenet"))
    assert lenet["params"] == sum(p.numel() for p in built.parameters())
    assert lenet == {r["name"]: r for r in rows}["lenet"]


def test_unknown_names_are_not_reports():
    with pytest.raises(AttributeError):
        reports.no_such_report  # noqa: B018


JSON_CASES = [  # (CLI arguments, the report they print)
    (["conv", "-i", "3x32x32", "-k", "3", "-o", "8", "--json"],
     lambda: reports.conv_report("3x32x32", "3", out_channels=8)),
    (["conv", "-i", "32", "-k", "3", "-t", "16", "--json"],
     lambda: reports.conv_report("32", "3", target="16")),
    (["conv", "--x", "1 2 3; 4 5 6", "--w", "1 -1;", "-e", "0,1", "--json"],
     lambda: reports.numeric_report("1 2 3; 4 5 6", "1 -1;", explain="0,1")),
    (["rf", "resnet18", "--at", "layer2.0.conv1", "--json"],
     lambda: reports.rf_report("resnet18", at="layer2.0.conv1")),
    (["rf", "--layers", "conv k=3; maxpool k=2", "--json"],
     lambda: reports.rf_report(layers_recipe("conv k=3; maxpool k=2", None))),
    (["params", "resnet18", "-b", "4", "--dtype", "bf16", "--json"],
     lambda: reports.params_report("resnet18", batch=4, dtype="bf16")),
    (["params", "lenet", "--input", "40", "--json"],
     lambda: reports.params_report(load_recipe("lenet", ["input=[1, 40, 40]"]))),
    (["recipes", "--json"], lambda: reports.recipes_report()),
    (["recipes", "googlenet", "--json"], lambda: reports.recipes_report("googlenet")),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "report"), JSON_CASES, ids=[" ".join(a) for a, _ in JSON_CASES])
def test_json_output_is_the_report(argv, report, capsys):
    from cnnkit.cli.app import main

    main(argv)
    assert capsys.readouterr().out == dumps(report(), indent=None) + "\n"  # a pipe: compact


def test_the_pure_reports_import_no_torch(tmp_path):
    import json
    import subprocess
    import sys

    code = (
        "import sys, json\nfrom cnnkit import reports\n"
        "reports.conv_report('3x32x32', 3, out_channels=8)\n"
        "reports.numeric_report('1 2 3', '1 1')\n"
        "reports.rf_report('resnet50')\n"
        "reports.params_report('densenet121', batch=8)\n"
        "reports.recipes_report('textcnn')\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "pandas", "numpy", "fvcore")]
