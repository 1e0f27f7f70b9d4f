"""Huge sizes answer in milliseconds or are refused in one line (issue 11, items 9 and 10).

Each CLI case here hung, took gigabytes, raised an internal error or crashed `train` with an
allocator message before. They run in a subprocess under a 20 s timeout and an address-space
limit (RLIMIT_AS), so a hang or a gigabyte allocation fails the test instead of the machine.
The closed forms that replaced the loops are checked against brute force on small sizes.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
from math import gcd
from pathlib import Path

import pytest

from cnnkit.analysis.memory import human_bytes
from cnnkit.arith import sizes
from cnnkit.arith.receptive import AxisField, Span
from cnnkit.arith.solve import solve
from cnnkit.errors import InputError, RecipeError

ROOT = Path(__file__).resolve().parents[1]
PURE_LIMIT = 1 << 30  # conv, rf, recipes, params import no torch: 1 GiB of address space
TORCH_LIMIT = 3 << 30  # train imports torch (about 0.7 GiB mapped before any tensor)
G = 10**9


def cnnkit(*args: str, limit: int = PURE_LIMIT) -> subprocess.CompletedProcess[str]:
    """``python -m cnnkit ARGS`` with at most ``limit`` bytes of address space, 20 s."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args],
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=cap,
        env=env,
        cwd=ROOT,
    )


def refused(result: subprocess.CompletedProcess[str], *wanted: str) -> str:
    """The run failed with exit 2 and exactly one ``error:`` line holding ``wanted``."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    for text in wanted:
        assert text in result.stderr, result.stderr
    return result.stderr


def answer(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- cnnkit conv: sizes, unread inputs and --target with huge values ---------------------------


def test_target_on_a_billion_input_lists_every_padding_by_formula() -> None:
    doc = answer(
        cnnkit("conv", "--input", str(G), "--kernel", "3", "--target", str(G // 2), "--json")
    )
    found = doc["axes"][0]["solutions"]
    assert found
    for sol in found:
        lo, hi = sol["padding"]
        top = sol["stride_max"] if sol["stride_max"] is not None else sol["stride"]
        for s in {sol["stride"], top}:
            assert (G + lo + hi - 3) // s + 1 == G // 2  # PyTorch's floor rule, by hand
    # the searched paddings (0..2 before, the same or one more after) that some stride fits
    fits = {
        (lo, hi)
        for lo in range(3)
        for hi in (lo, lo + 1)
        if any((G + lo + hi - 3) // s + 1 == G // 2 for s in (1, 2, 3))
    }
    assert {tuple(s["padding"]) for s in found} == fits


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation"),
    [(3, 5, 2), (1_000_000, 2_000_000, 1), (100_000, 100_000, 3)],
)
def test_unread_inputs_of_a_billion_input_match_the_formula(
    kernel: int, stride: int, dilation: int
) -> None:
    args = ["--input", str(G), "--kernel", str(kernel), "--stride", str(stride)]
    doc = answer(cnnkit("conv", *args, "--dilation", str(dilation), "--json"))
    axis = doc["axes"][0]
    out = (G - dilation * (kernel - 1) - 1) // stride + 1
    assert axis["output"] == out
    # No two taps read the same position: i*s + j*d = i'*s + j'*d needs j' - j to be a
    # multiple of s / gcd(s, d), which is at least the kernel in each case. So the windows
    # read out * kernel distinct positions.
    assert stride // gcd(stride, dilation) >= kernel
    assert axis["unread"] == G - out * kernel


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (("--input", "100", "--kernel", "3", "--dilation", str(G), "--target", "5"), "limit of"),
        (("--input", str(G), "--kernel", str(G), "--target", "1"), "give --padding"),
        (("--input", str(G), "--kernel", "3", "--target", "2", "--padding", "same"), "--stride"),
        (("--input", str(10**6), "--kernel", "100", "--dilation", "50", "--target", "2"), "steps"),
        (
            ("--input", str(G), "--kernel", "3", "--target", str(G), "--layer", "convtranspose"),
            "--output-padding",
        ),
        (
            ("--input", str(G), "--kernel", str(10**8), "--target", "9", "--layer", "maxpool"),
            "give --padding",
        ),
        (
            (
                *("--input", str(G), "--kernel", "3", "--layer", "convtranspose"),
                *("--dilation", str(G + 1), "--stride", "2", "--padding", str(G)),
            ),
            "residue classes",
        ),
    ],
)
def test_conv_work_beyond_its_limits_is_one_line(args: tuple[str, ...], wanted: str) -> None:
    refused(cnnkit("conv", *args), wanted)


def test_target_with_the_padding_given_stays_exact_for_a_huge_kernel() -> None:
    args = ("--input", str(G), "--kernel", str(G), "--target", "1", "--padding", "0", "--json")
    (sol,) = answer(cnnkit("conv", *args))["axes"][0]["solutions"]
    assert (sol["stride"], sol["stride_max"], sol["unread"]) == (1, None, 0)


def test_numeric_conv_refuses_large_arrays_before_reading_them(tmp_path: Path) -> None:
    numpy = pytest.importorskip("numpy")
    big = tmp_path / "big.npy"
    numpy.save(big, numpy.zeros(2_000_000, dtype=numpy.float32))
    refused(cnnkit("conv", "--x", str(big), "--w", "1 1"), "big.npy holds 2,000,000 values")
    csv = tmp_path / "big.csv"
    csv.write_text(("1," * 999 + "1\n") * 1001)
    refused(cnnkit("conv", "--x", str(csv), "--w", "1 1;"), "big.csv holds 1,001,000 values")
    refused(cnnkit("conv", "--x", "1 2 3", "--w", "1", "--padding", str(G)), "multiplications")
    refused(cnnkit("conv", "--x", "9" * 100 + " 2", "--w", "1"), "an integer of 100 digits")


# -- cnnkit rf with a billion input -------------------------------------------------------------


def test_rf_full_units_of_a_billion_input_match_the_formula() -> None:
    layers = "conv k=3 p=1; conv k=3 s=2 p=1"
    doc = answer(cnnkit("rf", "--layers", layers, "--input", str(G), "--json"))
    at = doc["at"]
    # unit i of the second layer sees [2i - 2, 2i + 2]: inside the input for 1 <= i <= (G-3)//2
    assert at["output"] == [G // 2]
    assert at["full_units"] == (G - 3) // 2
    assert at["receptive_field"] == [5]


def test_rf_adaptive_pooling_with_a_huge_period_is_unknown_not_a_hang() -> None:
    layers = f"conv k=3; adaptive_avgpool output={G - 63}; conv k=3 s=2"
    result = cnnkit("rf", "--layers", layers, "--input", str(G), "--json")
    doc = answer(result)
    assert "4,096 tracked" in doc["layers"][1]["unknown"]
    refused(cnnkit("rf", "--layers", f"convtranspose k=3 s={G}", "--input", "10"), "4,096")


def test_rf_verify_refuses_a_probe_the_machine_cannot_hold() -> None:
    refused(
        cnnkit("rf", "--layers", "conv k=3; conv k=3", "--input", str(G), "--verify"),
        "--verify: back-propagating one fp64 sample needs at least 16.00 GB",
    )


# -- recipes, params and train: a model no machine holds, a batch this machine cannot hold -------

LAYERS = {
    "channels 1e20": f"    - conv: {{out: {10**20}, k: 3}}\n    - flatten\n    - linear: 10\n",
    "conv 1e10": "    - conv: 10000000000\n    - flatten\n    - linear: 10\n",
    "linear 1e10": "    - conv: 8\n    - flatten\n    - linear: 10000000000\n",
}


def _recipe(tmp_path: Path, layers: str, input_: str = "[1, 32, 32]") -> Path:
    path = tmp_path / "huge.yaml"
    path.write_text(f"input: {input_}\nmodel:\n  layers:\n{layers}data: {{name: digits}}\n")
    return path


@pytest.mark.parametrize("case", LAYERS)
@pytest.mark.parametrize("command", ["recipes", "params"])
def test_a_layer_no_machine_holds_is_refused_with_its_key(
    tmp_path: Path, case: str, command: str
) -> None:
    path = _recipe(tmp_path, LAYERS[case])
    line = 6 if case == "linear 1e10" else 4
    key = "model.layers[2]" if case == "linear 1e10" else "model.layers[0]"
    refused(cnnkit(command, str(path)), f"{path}:{line}: {key}", "more than the limit of")


def test_a_billion_by_billion_input_is_refused_naming_the_input(tmp_path: Path) -> None:
    path = _recipe(tmp_path, "    - conv: 8\n    - global_avgpool\n", "[3, 1000000000, 1000000000]")
    refused(cnnkit("params", str(path)), f"{path}:1: input: 3 x 1000000000 x 1000000000")
    refused(cnnkit("params", "lenet", "--batch", str(10**30)), "--batch")
    # a torchvision/timm model is run on a batch to be counted: refused before it is built
    refused(cnnkit("params", "torchvision:resnet18", "--input", str(G)), f"3x{G}x{G} is")


def test_a_batch_this_machine_cannot_hold_warns_in_the_check_and_train_refuses(
    tmp_path: Path,
) -> None:
    path = _recipe(
        tmp_path, "    - conv: 4\n    - global_avgpool\n    - flatten\n    - linear: 10\n"
    )
    path.write_text(path.read_text().replace("[1, 32, 32]", f"[1, {G}]"))
    checked = cnnkit("recipes", str(path))
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.startswith("warning: training at train.batch_size 64 needs at least")
    assert checked.stderr.count("\n") == 1 and "model.layers[0]" in checked.stderr
    trained = cnnkit("train", str(path), "--out", str(tmp_path / "run"), limit=TORCH_LIMIT)
    # the conv keeps its input batch for the weight gradient: 64 x 1e9 fp32 values at least
    refused(trained, "train.batch_size 64 needs at least 256.00 GB", "model.layers[0]")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_train_refuses_a_layer_no_machine_holds_before_building(tmp_path: Path) -> None:
    path = _recipe(tmp_path, LAYERS["conv 1e10"])
    trained = cnnkit("train", str(path), "--out", str(tmp_path / "run"), limit=TORCH_LIMIT)
    refused(trained, f"{path}:4: model.layers[0] (0, conv): its output: 10000000000 x 30 x 30")


def test_large_but_real_models_are_still_analysed() -> None:
    result = cnnkit("params", "resnet50", "--json")
    doc = answer(result)
    assert doc["totals"]["params"] == 25_557_032 and result.stderr == ""
    assert cnnkit("recipes", "vgg16").returncode == 0


def test_the_training_check_names_the_batch_and_the_largest_layer(monkeypatch) -> None:
    pytest.importorskip("torch")
    from cnnkit.analysis import bounds
    from cnnkit.recipe import load_recipe
    from cnnkit.train import plan as plan_module
    from cnnkit.train.config import parse_train

    recipe = load_recipe("vgg16")
    train = parse_train({"batch_size": 8, "eval_batch_size": 8, "device": "cpu"}, recipe.source)
    estimate = bounds.train_estimate(recipe, 8, "sgd", 0.9, "off")
    monkeypatch.setattr(bounds, "available_memory", lambda: bounds.Available(estimate.total, "x"))
    plan_module.check_training_memory(recipe, train)  # exactly enough: no refusal
    tight = bounds.Available(estimate.total - 1, "test memory")
    monkeypatch.setattr(bounds, "available_memory", lambda: tight)
    with pytest.raises(RecipeError) as err:
        plan_module.check_training_memory(recipe, train)
    assert "train.batch_size 8" in str(err.value) and "(classifier.0, linear)" in str(err.value)


# -- the closed forms against brute force ----------------------------------------------------


def _read_brute(n: int, k: int, s: int, pad: tuple[int, int], d: int, out: int) -> tuple[int, int]:
    seen = {i * s - pad[0] + j * d for i in range(out) for j in range(k)} & set(range(n))
    return len(seen), max(seen, default=-1)


def _transposed_brute(n: int, k: int, s: int, p: int, d: int, out: int) -> int:
    return sum(not any(0 <= i * s - p + j * d < out for j in range(k)) for i in range(n))


def test_unread_counts_equal_brute_force_on_random_layers() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        n, k, s, d = rng.randint(1, 80), rng.randint(1, 9), rng.randint(1, 12), rng.randint(1, 12)
        pad = (rng.randint(0, 15), rng.randint(0, 15))
        if sizes.span(k, d) <= n + sum(pad):
            out = sizes.conv_size(n, k, s, pad, d)
            assert sizes.read_positions(n, k, s, pad, d, out) == _read_brute(n, k, s, pad, d, out)
        try:
            out = sizes.transposed_size(n, k, s, pad[0], d, rng.randint(0, 3))
        except Exception:
            continue
        assert sizes.transposed_unread(n, k, s, pad[0], d, out) == _transposed_brute(
            n, k, s, pad[0], d, out
        )


def _expand(found, top: int) -> set[tuple]:
    return {
        (s, x.padding, x.output_padding, x.ceil_mode)
        for x in found
        for s in range(x.stride_min, (top if x.stride_max is None else x.stride_max) + 1)
    }


def _solve_brute(op: str, n: int, k: int, t: int, d: int, top: int) -> set[tuple]:
    hits = set()
    for s in range(1, top + 1):
        for cm in (False, True) if op.endswith("pool") else (False,):
            pads = [(p, p) for p in range(k // 2 + 1)]
            if op == "conv":
                pads = [(lo, lo + e) for lo in range(sizes.span(k, d)) for e in (0, 1)]
            for pad in pads:
                try:
                    if op == "conv":
                        out = sizes.conv_size(n, k, s, pad, d)
                    else:
                        out = sizes.pool_size(n, k, s, pad[0], d, cm)
                except Exception:
                    continue
                if out == t:
                    hits.add((s, pad, 0, cm))
    return hits


def test_target_strides_in_closed_form_equal_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(400):
        op = rng.choice(["conv", "maxpool", "avgpool"])
        n, k, t = rng.randint(1, 40), rng.randint(1, 6), rng.randint(1, 42)
        d = 1 if op == "avgpool" else rng.randint(1, 3)
        top = n + 2 * sizes.span(k, d)
        assert _expand(solve(op, n, k, t, dilation=d), top) == _solve_brute(op, n, k, t, d, top)


def test_adaptive_windows_and_shortcut_strides_in_closed_form() -> None:
    from cnnkit.layers.pool import adaptive_kernel
    from cnnkit.recipe.graph import _smallest_stride

    for n in range(1, 90):
        for o in range(1, 90):
            widest = max(-(-(i + 1) * n // o) - i * n // o for i in range(o))
            assert adaptive_kernel(n, o) == widest
            brute = next((s for s in range(1, n + 1) if sizes.conv_size(n, 1, s) == o), None)
            assert _smallest_stride(n, o) == brute


def _random_span(rng: random.Random) -> Span:
    field = Span.identity()
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        if choice < 0.5:
            layer = Span.window(rng.randint(1, 5), rng.randint(1, 3), rng.randint(0, 2))
        elif choice < 0.8:
            layer = Span.transposed(rng.randint(2, 6), rng.randint(1, 3), rng.randint(0, 2))
        else:
            layer = Span.adaptive(rng.randint(4, 30), rng.randint(1, 12))
        if layer is not None:
            field = field.then(layer)
    return field


def test_field_sizes_and_inside_units_equal_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(300):
        spans = [_random_span(rng) for _ in range(rng.randint(1, 3))]
        field = AxisField.merge(AxisField((s,), (s,)) for s in spans)
        count, n = rng.randint(1, 60), rng.randint(1, 60)
        sizes_ = [field.hi(i) - field.lo(i) + 1 for i in range(count)]
        assert field.size_range(count) == (min(sizes_), max(sizes_))
        inside = [i for i in range(count) if field.lo(i) >= 0 and field.hi(i) <= n - 1]
        first, last = field.inside(count, n)
        assert list(range(first, last + 1)) == inside


def test_huge_counts_print_without_overflow() -> None:
    assert human_bytes(10**500) == "1.00e+500 B"
    assert human_bytes(36 * 10**12) == "36.00 TB"
    with pytest.raises(InputError):
        sizes.read_positions(10**12, 10**6, 10**6 + 3, (0, 0), 10**6 + 1, 10**5)


def test_on_cuda_the_estimate_meets_the_device_and_the_weights_the_host(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from cnnkit.analysis import bounds
    from cnnkit.recipe import load_recipe
    from cnnkit.train import plan as plan_module
    from cnnkit.train.config import parse_train

    recipe = load_recipe("vgg16")
    train = parse_train({"batch_size": 8, "eval_batch_size": 8, "device": "cuda"}, recipe.source)
    estimate = bounds.train_estimate(recipe, 8, "sgd", 0.9, "off")
    gpu = SimpleNamespace(total_memory=estimate.total)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: gpu)
    host = bounds.Available(estimate.weights, "host memory")
    monkeypatch.setattr(bounds, "available_memory", lambda: host)
    plan_module.check_training_memory(recipe, train)  # the device holds it, the host the weights
    gpu.total_memory -= 1
    with pytest.raises(RecipeError, match="of memory of cuda:0"):
        plan_module.check_training_memory(recipe, train)
    gpu.total_memory += 1
    monkeypatch.setattr(bounds, "available_memory", lambda: bounds.Available(1000, "host memory"))
    with pytest.raises(RecipeError, match="on the host, where the weights are built first"):
        plan_module.check_training_memory(recipe, train)


def test_the_evaluation_batch_is_checked_too(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch")
    from cnnkit.analysis import bounds
    from cnnkit.recipe import load_recipe
    from cnnkit.train import plan as plan_module
    from cnnkit.train.config import parse_train

    layers = "    - conv: 4\n    - global_avgpool\n    - flatten\n    - linear: 10\n"
    recipe = load_recipe(_recipe(tmp_path, layers, "[1, 1000000]"))
    train = parse_train({"batch_size": 1, "eval_batch_size": 512, "device": "cpu"}, recipe.source)
    fits = bounds.train_estimate(recipe, 1, "sgd", 0.9, "off").total
    # evaluation holds the conv's input (1 x 1,000,000) and output (4 x 999,998) for 512 samples
    monkeypatch.setattr(bounds, "available_memory", lambda: bounds.Available(fits, "test"))
    with pytest.raises(RecipeError, match="train.eval_batch_size 512 needs at least 10.24 GB"):
        plan_module.check_training_memory(recipe, train)
