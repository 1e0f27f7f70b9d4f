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
    with pytest.raises(Interrupted), handled():  # outside a deferred block: at once
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("not reached")
    assert done == ["saved"]
