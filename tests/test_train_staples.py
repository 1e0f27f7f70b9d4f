"""``cnnkit train`` staples: --print-config, a Ctrl-C held until a checkpoint is saved, and a
resume that extends a run's epochs (refusing every other change with the reason)."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

from cnnkit.interrupts import Interrupted, deferred, handled
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe


def test_print_config_is_the_recipe_a_run_would_keep_and_trains_nothing(tmp_path):
    recipe = tiny_recipe(tmp_path)
    sets = ("--set", "train.epochs=1", "--set", "train.lr=0.2")
    shown = run_cli("train", str(recipe), *sets, "--print-config")
    assert shown.code == 0 and shown.err == "", shown.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # no run folder
    run = tmp_path / "run"
    trained = run_cli("train", str(recipe), *sets, "--out", str(run), "--json")
    assert trained.code == 0, trained.err
    assert shown.out == (run / "recipe.yaml").read_text(encoding="utf-8")
    plain = yaml.safe_load(shown.out)
    assert plain["train"]["lr"] == 0.2 and plain["train"]["optimizer"] == "sgd"  # a default
    assert set(plain) >= {"input", "model", "data", "train"}
    as_json = run_cli("train", str(recipe), *sets, "--print-config", "--json")
    assert as_json.code == 0 and json.loads(as_json.out) == plain


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--set", "train.epochs=0"), "train.epochs"),
        (("--set", "train.nope=1"), "train.nope: unknown key"),
        (("--resume", "x"), "--print-config takes a RECIPE"),
    ],
)
def test_print_config_errors_are_one_line(tmp_path, args, said):
    recipe = () if args[0] == "--resume" else (str(tiny_recipe(tmp_path)),)
    r = run_cli("train", *recipe, *args, "--print-config")
    assert r.code == 2 and r.out == "" and said in r.err and r.err.count("\n") == 1, r.err


def test_a_signal_inside_deferred_waits_for_the_block_and_a_second_changes_nothing():
    done = []
    with pytest.raises(Interrupted) as stopped, handled():
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            done.append("saved")
        done.append("not reached")
    assert done == ["saved"] and stopped.value.exit_code == 130
    with handled():  # once raised, a later signal is ignored while the first one unwinds
        with pytest.raises(Interrupted), deferred():
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        done.append("cleanup ran")
    assert done == ["saved", "cleanup ran"]
    with pytest.raises(Interrupted), handled():  # outside a deferred block: at once
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("not reached")
    assert done == ["saved", "cleanup ran"]


CONSTANT = """\
data: {name: synthetic, samples: 200, classes: 10}
train: {epochs: 3, batch_size: 20, lr: 0.05, device: cpu, scheduler: step, step_size: 1,
        gamma: 0.5}
"""


def _weights(run):
    import torch

    from cnnkit.train.checkpoint import load_checkpoint

    a = load_checkpoint(run / "last.pt")
    return a["epoch"], {k: v.clone() for k, v in a["model"].items()}, torch


def test_an_extended_run_is_the_run_trained_that_long_at_once(tmp_path):
    recipe = tiny_recipe(tmp_path, CONSTANT)
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_cli("train", str(recipe), "--out", str(whole), "--json").code == 0
    one = ("--set", "train.epochs=1")
    assert run_cli("train", str(recipe), *one, "--out", str(part), "--json").code == 0
    r = run_cli("train", "--resume", str(part), "--set", "train.epochs=3")
    assert r.code == 0, r.err
    assert "extended from 1 to 3 epochs" in r.out
    epoch, mine, torch = _weights(part)
    ref_epoch, ref, _ = _weights(whole)
    assert epoch == ref_epoch == 3 and all(torch.equal(mine[k], ref[k]) for k in ref)
    done = json.loads((part / "summary.json").read_text())
    assert done["extended"] == {"from": 1, "to": 3} and done["epochs_planned"] == 3
    assert done["status"] == "completed"
    strip = ("time_s", "images_per_s")
    rows = [
        {
            k: v
            for k, v in json.loads((run / "summary.json").read_text())["final"].items()
            if k not in strip
        }
        for run in (part, whole)
    ]
    assert rows[0] == rows[1]
    again = run_cli("train", "--resume", str(part), "--json")  # a plain resume: as it is
    assert again.code == 0 and json.loads(again.out)["epochs"] == 3


@pytest.mark.parametrize(
    ("train", "sets", "said"),
    [
        ("scheduler: cosine", ("train.epochs=4",), "train.scheduler cosine spreads"),
        ("scheduler: constant", ("train.epochs=1",), "trained 2 epochs already"),
        ("scheduler: constant", ("train.epochs=4", "train.lr=0.3"), "--set train.lr:"),
        ("scheduler: constant", ("train.batch_size=10",), "the data order"),
        ("scheduler: constant", ("model.layers[0].conv.out=5",), "--set model.layers[0]"),
        ("scheduler: constant", ("data.samples=100",), "--set data.samples:"),
    ],
)
def test_an_extension_that_breaks_exactness_is_refused_with_the_key(tmp_path, train, sets, said):
    extra = (
        "data: {name: synthetic, samples: 200, classes: 10}\n"
        f"train: {{epochs: 2, batch_size: 40, device: cpu, {train}}}\n"
    )
    recipe, run = tiny_recipe(tmp_path, extra), tmp_path / "run"
    assert run_cli("train", str(recipe), "--out", str(run), "--json").code == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    args = [a for s in sets for a in ("--set", s)]
    r = run_cli("train", "--resume", str(run), *args)
    assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


@pytest.mark.skipif(_has_tensorboard(), reason="tensorboard is installed here")
def test_tensorboard_without_the_package_is_one_line_before_training(tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(run), "--tensorboard")
    assert r.code == 2 and r.err.count("\n") == 1 and "pip install tensorboard" in r.err
    assert not run.exists()


@pytest.mark.skipif(not _has_tensorboard(), reason="needs the tensorboard package")
def test_tensorboard_logs_each_metrics_row_once_across_a_resume(tmp_path):
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe, run = tiny_recipe(tmp_path, CONSTANT), tmp_path / "run"
    one = ("--set", "train.epochs=1", "--tensorboard", "--json")
    assert run_cli("train", str(recipe), "--out", str(run), *one).code == 0
    again = ("--set", "train.epochs=3", "--tensorboard", "--json")
    assert run_cli("train", "--resume", str(run), *again).code == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    for key in ("train_loss", "val_accuracy", "lr"):
        logged = [(s.step, s.value) for s in events.Scalars(key)]
        assert [step for step, _ in logged] == [1, 2, 3]
        assert [v for _, v in logged] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)
