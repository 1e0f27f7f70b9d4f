"""The torch-side reports called directly: ``profile_report``, ``eval_report``,
``train_summary`` and ``sweep_summary``, each against an independent oracle (a plain
``torch.nn`` twin of the model, ``sklearn.metrics``, the run folder's own files), and each
equal byte for byte to what the command's ``--json`` prints."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
import torch
from sklearn import metrics
from torch import nn

from cnnkit.jsonsafe import dumps
from cnnkit.recipe import load_recipe
from cnnkit.reports.evaluate import eval_report
from cnnkit.reports.profile import profile_report
from cnnkit.reports.train import sweep_summary, train_summary
from tests.clitools import run_cli
from tests.trainkit import summary, tiny_recipe

ONE_EPOCH = ("train.epochs=1",)


def _twin() -> nn.Module:
    """trainkit's TINY_MODEL written out in torch.nn, with the recipe's layer names."""
    return nn.Sequential(
        OrderedDict(
            c1=nn.Conv2d(1, 4, 3),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            flat=nn.Flatten(),
            drop=nn.Dropout(0.1),
            fc=nn.Linear(36, 10),
        )
    )


def _torch_macs(model: nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """Per-sample multiply-accumulates of every conv and linear, from torch's output shapes."""
    macs: dict[str, int] = {}

    def hook(name: str):
        def record(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
                macs[name] = out[0].numel() * per_output
            elif isinstance(module, nn.Linear):
                macs[name] = module.in_features * module.out_features

        return record

    for name, module in model.named_children():
        module.register_forward_hook(hook(name))
    model(torch.randn(1, *shape))
    return macs


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    """One epoch of the tiny recipe, trained through the library, not the command."""
    folder = tmp_path_factory.mktemp("reports")
    recipe = tiny_recipe(folder)
    document = train_summary(recipe, overrides=ONE_EPOCH, out=folder / "run")
    return folder / "run", document


# profile ---------------------------------------------------------------------------------


def test_profile_report_relates_times_to_the_torch_mac_count(tmp_path):
    recipe = load_recipe(tiny_recipe(tmp_path))
    report = profile_report(
        recipe, batches=(1, 4), device="cpu", mode="train", warmup=0, iters=3, layers=True
    )
    oracle = _torch_macs(_twin(), (1, 8, 8))
    assert report["macs_per_sample"] == sum(oracle.values()) == 9 * 4 * 36 + 360
    assert [row["batch"] for row in report["batches"]] == [1, 4]
    for row in report["batches"]:
        seconds = row["median_ms"] / 1e3
        assert row["p90_ms"] >= row["median_ms"] > 0
        assert row["images_per_s"] == pytest.approx(row["batch"] / seconds)
        # a training step counts three forward passes
        assert row["achieved_macs_per_s"] == pytest.approx(3 * 1656 * row["batch"] / seconds)
    layers = report["layers"]
    assert layers["batch"] == 4 and layers["end_to_end_ms"] == report["batches"][-1]["median_ms"]
    rows = {r["name"]: r for r in layers["layers"]}
    assert list(rows) == ["c1", "1", "2", "3", "drop", "fc"]
    assert rows["c1"]["macs"] == oracle["c1"] and rows["fc"]["macs"] == oracle["fc"]
    shapes = [
        list(m(torch.zeros(1, 1, 8, 8)).shape[1:]) for m in [_twin()[:i] for i in range(1, 7)]
    ]
    assert [r["output"] for r in layers["layers"]] == shapes
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    assert layers["sum_ms"] == pytest.approx(sum(r["total_ms"] for r in rows.values()))
    ranked = sorted(rows.values(), key=lambda r: r["total_ms"], reverse=True)
    assert layers["slowest"] == [r["name"] for r in ranked[:5]]
    assert all(r["backward_ms"] is not None for r in rows.values())  # train mode times both


def _fixed_clock(monkeypatch) -> None:
    """Replace the timers with fixed times, so two profiles of one model are equal."""
    from cnnkit.measure import profiling

    def end_to_end(model, shape, batch, settings, vocab=None):
        return profiling.EndToEnd(batch, [1e-3 * batch, 3e-3 * batch], 12345, "cpu_peak_rss")

    def per_layer(model, shape, batch, settings, vocab=None):
        leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
        return [
            profiling.LayerTime(n, type(m).__name__, (1,), 1e-4 * (i + 1), None)
            for i, (n, m) in enumerate(leaves)
        ]

    monkeypatch.setattr(profiling, "end_to_end", end_to_end)
    monkeypatch.setattr(profiling, "per_layer", per_layer)


def test_profile_json_is_the_report(tmp_path, monkeypatch):
    _fixed_clock(monkeypatch)
    path = tiny_recipe(tmp_path)
    report = profile_report(str(path), batches=(2, 8), device="cpu", layers=True)
    assert report == profile_report(load_recipe(path), batches=(2, 8), device="cpu", layers=True)
    assert report["batches"][1]["median_ms"] == pytest.approx(16.0)  # the fake clock is used
    assert report["layers"]["slowest"][0] == "fc"
    r = run_cli("profile", str(path), "--device", "cpu", "--batch", "2,8", "--layers", "--json")
    assert r.code == 0, r.err
    assert r.out == dumps(report, indent=None) + "\n"  # a pipe: compact


def test_profile_report_of_a_run_folder_is_named_after_it(run, monkeypatch):
    _fixed_clock(monkeypatch)
    report = profile_report(str(run[0]), batches=(1,), device="cpu")
    assert report["model"] == "run" and report["macs_per_sample"] == 1656


def test_profile_report_refuses_what_it_cannot_time(tmp_path):
    from cnnkit.errors import InputError

    recipe = load_recipe(tiny_recipe(tmp_path))
    with pytest.raises(InputError, match="--layers times an eager model"):
        profile_report(recipe, device="cpu", compile=True, layers=True)
    with pytest.raises(InputError, match="--mode: expected one of infer, train"):
        profile_report(recipe, device="cpu", mode="fit")
    with pytest.raises(ValueError, match="overrides apply to a target"):
        profile_report(recipe, device="cpu", overrides=["input=[1, 9, 9]"])
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(InputError, match="a checkpoint file, but this command takes"):
        profile_report(str(tmp_path / "x.pt"), device="cpu")


# eval ------------------------------------------------------------------------------------


def _oracle(run: Path) -> tuple[list[int], list[int], torch.Tensor]:
    """Truth and predictions of best.pt on the run's test split, from the torch.nn twin."""
    from cnnkit.train.data import load_data
    from cnnkit.train.plan import sections

    checkpoint = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    twin = _twin()
    twin.load_state_dict(checkpoint["model"])  # the same names: c1.*, fc.*
    config = sections(load_recipe(run / "recipe.yaml"))[0]
    stats = (tuple(checkpoint["mean"]), tuple(checkpoint["std"]))
    test = load_data(config, (1, 8, 8), stats=stats).test
    with torch.no_grad():
        logits = twin.eval()(test.x)
    return test.y.tolist(), logits.argmax(1).tolist(), logits


def test_eval_report_matches_sklearn_on_the_twins_predictions(run):
    folder, _ = run
    report = eval_report(folder)
    truth, predicted, logits = _oracle(folder)
    labels = list(range(10))
    assert report["checkpoint"] == str(folder / "best.pt") and report["split"] == "test"
    assert report["samples"] == len(truth)
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert report["confusion"] == metrics.confusion_matrix(truth, predicted, labels=labels).tolist()
    p, r, f, s = metrics.precision_recall_fscore_support(
        truth, predicted, labels=labels, average=None, zero_division=0
    )
    assert [row["f1"] for row in report["per_class"]] == pytest.approx(f)
    assert [row["support"] for row in report["per_class"]] == s.tolist()
    probs = torch.softmax(logits.double(), 1).numpy()
    assert report["loss"] == pytest.approx(metrics.log_loss(truth, probs, labels=labels), rel=1e-5)


def test_eval_json_is_the_report(run):
    folder, _ = run
    report = eval_report(folder, split="val", top_k=2)
    r = run_cli("eval", str(folder), "--split", "val", "--top-k", "2", "--json")
    assert r.code == 0, r.err
    assert r.out == dumps(report, indent=None) + "\n"  # a pipe: compact


def test_the_accuracy_gate_on_a_report(run):
    from cnnkit.errors import BudgetExceeded, InputError
    from cnnkit.reports.evaluate import check_accuracy, fraction

    report = eval_report(run[0])
    check_accuracy(report, report["accuracy"])  # at the gate passes
    with pytest.raises(BudgetExceeded, match="is below --min-accuracy") as failed:
        check_accuracy(report, fraction(100))
    assert failed.value.exit_code == 1
    assert fraction(97) == pytest.approx(0.97) and fraction(0.5) == 0.5
    with pytest.raises(InputError, match="a fraction 0-1 or a percentage"):
        fraction(101)


def test_eval_report_refuses_a_recipe_name():
    from cnnkit.errors import InputError

    with pytest.raises(InputError, match="a built-in recipe name, but this command takes"):
        eval_report("lenet")


# train -----------------------------------------------------------------------------------


def test_train_summary_is_the_run_folders_record(run):
    folder, document = run
    assert json.loads(dumps(document)) == summary(folder)
    assert document["params"] == sum(p.numel() for p in _twin().parameters()) == 410
    data = document["data"]
    assert data["train"] + data["val"] + data["test"] == 200 and data["classes"] == 10
    assert document["status"] == "completed" and document["epochs"] == 1
    final = pd.read_csv(folder / "metrics.csv").iloc[-1]
    assert document["final"]["train_loss"] == pytest.approx(final["train_loss"])
    truth, predicted, _ = _oracle(folder)
    assert document["test"]["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert document["test"]["accuracy"] == eval_report(folder)["accuracy"]


def test_resuming_a_finished_run_returns_its_summary_as_json_does(run):
    folder, document = run
    again = train_summary(resume=str(folder))  # a str as well as a Path
    assert again == {**summary(folder), "run_dir": str(folder)}
    r = run_cli("train", "--resume", str(folder), "--json")
    assert r.code == 0, r.err
    assert r.out == dumps(again, indent=None) + "\n"


def test_train_summary_refuses_a_recipe_with_resume(run):
    from cnnkit.errors import InputError

    with pytest.raises(InputError, match="--resume continues a run exactly as it was"):
        train_summary("lenet", resume=run[0])


def test_sweep_summary_rows_come_from_each_runs_summary(tmp_path):
    recipe = tiny_recipe(tmp_path)
    heard: list[dict] = []
    document = sweep_summary(
        recipe,
        ["train.lr=1e6,0.05"],
        overrides=ONE_EPOCH,
        runs_root=tmp_path / "runs",
        on_diverged=lambda combo, err: heard.append(combo),
    )
    rows = document["runs"]
    assert [(row["train.lr"], row["status"]) for row in rows] == [
        ("1e6", "diverged"),
        ("0.05", "completed"),
    ]
    assert heard == [{"train.lr": "1e6"}]
    for row in rows:
        recorded = summary(Path(row["run_dir"]))
        assert row["status"] == recorded["status"] and row["epochs"] == recorded["epochs"]
    done = summary(Path(rows[1]["run_dir"]))
    assert rows[1]["test_accuracy"] == done["test"]["accuracy"]
    assert rows[1]["final_train_loss"] == done["final"]["train_loss"]
    assert rows[1]["params"] == 410 and "loss became" in rows[0]["error"]
