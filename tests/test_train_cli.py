"""cnnkit train / eval from the command line: the shipped LeNet, JSON, sweeps, gates, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.clitools import run_cli
from tests.trainkit import TINY_TRAIN, summary, tiny_recipe


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("lenet") / "run"
    r = run_cli("train", "recipes/lenet.yaml", "--out", str(run))
    assert r.code == 0, r.err
    return run, r


def test_shipped_lenet_reaches_97_percent_on_digits(lenet_run):
    run, r = lenet_run
    document = summary(run)
    assert document["data"]["source"] == "digits" and document["params"] == 61706
    assert document["test"]["accuracy"] >= 0.97
    assert "test accuracy" in r.out and "run folder" in r.out
    for name in ("recipe.yaml", "metrics.csv", "summary.json", "last.pt", "best.pt"):
        assert (run / name).is_file(), name


def test_eval_of_the_run_reports_the_same_accuracy(lenet_run):
    run, _ = lenet_run
    r = run_cli("eval", str(run), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["accuracy"] == summary(run)["test"]["accuracy"]
    assert report["samples"] == summary(run)["data"]["test"]
    assert len(report["confusion"]) == 10 and len(report["per_class"]) == 10
    r = run_cli("eval", str(run))
    assert "confusion" in r.out and "precision" in r.out
    r = run_cli("eval", str(run / "best.pt"), "--min-accuracy", "0.97")
    assert r.code == 0, r.err


def test_eval_gate_and_csv(lenet_run):
    run, _ = lenet_run
    r = run_cli("eval", str(run), "--min-accuracy", "0.999")
    assert r.code == 1 and r.err.startswith("error: accuracy 0.9") and "Traceback" not in r.err
    r = run_cli("eval", str(run), "--csv")
    import pandas as pd

    table = pd.read_csv(io.StringIO(r.out))
    assert list(table.columns[:5]) == ["class", "precision", "recall", "f1", "support"]
    assert table["support"].sum() == summary(run)["data"]["test"]


def test_eval_on_other_data(lenet_run, tmp_path):
    run, _ = lenet_run
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "d.npz", x=digits.images[:50] / 16.0, y=digits.target[:50])
    r = run_cli("eval", str(run), "--data", f"npz:{tmp_path / 'd.npz'}", "--json")
    assert r.code == 2 and "images are 8x8 but the recipe's input is 32x32" in r.err
    r = run_cli("eval", str(run), "--data", "digits", "--json")
    assert r.code == 0 and json.loads(r.out)["samples"] == 1797


def test_train_json_is_the_summary(tmp_path):
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "r"), "--json")
    assert r.code == 0, r.err
    document = json.loads(r.out)
    assert document == summary(tmp_path / "r")
    expected = {
        "name",
        "run_dir",
        "status",
        "epochs",
        "epochs_planned",
        "best",
        "final",
        "test",
        "test_weights",
        "params",
        "data",
        "device",
        "world_size",
        "seed",
        "monitor",
        "time_s",
    }
    assert expected <= set(document)


def test_sweep_table(tmp_path):
    recipe = tiny_recipe(tmp_path)
    r = run_cli(
        "train",
        str(recipe),
        "--runs",
        str(tmp_path / "runs"),
        "--sweep",
        "train.lr=0.05,0.1",
        "--sweep",
        "train.batch_size=10,20",
        "--csv",
    )
    assert r.code == 0, r.err
    import pandas as pd

    table = pd.read_csv(io.StringIO(r.out))
    assert len(table) == 4 and {"train.lr", "train.batch_size", "test_accuracy"} <= set(table)
    assert len(list((tmp_path / "runs").iterdir())) == 4


def test_sweep_goes_on_past_a_diverged_run(tmp_path):
    """A combination that surely diverges (lr 1e6) is a row with status diverged; the
    combination after it still trains and the table is printed (exit 0)."""
    recipe = tiny_recipe(tmp_path)
    runs = tmp_path / "runs"
    r = run_cli("train", str(recipe), "--runs", str(runs), "--sweep", "train.lr=1e6,0.05", "--json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)["runs"]
    assert [(row["train.lr"], row["status"]) for row in rows] == [
        ("1e6", "diverged"),
        ("0.05", "completed"),
    ]
    assert "loss became" in rows[0]["error"] and rows[1]["test_accuracy"] > 0.2
    assert summary(Path(rows[0]["run_dir"]))["status"] == "diverged"
    assert "train.lr=1e6: diverged: loss became" in r.err
    table = run_cli("train", str(recipe), "--runs", str(runs), "--sweep", "train.lr=1e6,0.05")
    assert table.code == 0 and "diverged" in table.out and "completed" in table.out


def test_sweep_values_with_commas(tmp_path):
    """Lists are sweepable: commas inside brackets stay in one value, and each run's
    optimiser really used its betas (read back from torch's optimiser state)."""
    import yaml

    from cnnkit.train.checkpoint import load_checkpoint

    recipe = tiny_recipe(tmp_path)
    args = ["--set", "train.optimizer=adam", "--set", "train.epochs=1", "--json"]
    sweeps = ["train.betas=[0.9,0.99], [0.5,0.6]", "data.augment=[hflip],[hflip,random_crop]"]
    r = run_cli(
        "train", str(recipe), "--runs", str(tmp_path / "runs"), *args,
        *[a for s in sweeps for a in ("--sweep", s)],
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = json.loads(r.out)["runs"]
    assert len(rows) == 4
    for row in rows:
        run = Path(row["run_dir"])
        betas = yaml.safe_load(row["train.betas"])
        groups = load_checkpoint(run / "last.pt")["optimizer"]["param_groups"]
        assert all(tuple(g["betas"]) == pytest.approx(betas) for g in groups)
        resolved = yaml.safe_load((run / "recipe.yaml").read_text())
        kinds = [next(iter(a)) for a in resolved["data"]["augment"]]
        assert kinds == yaml.safe_load(row["data.augment"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "missing.yaml"], "missing.yaml"),
        (
            ["train", "{recipe}", "--set", "train.optimizer=rmsprop"],
            "train.optimizer: expected one",
        ),
        (
            ["train", "{recipe}", "--set", "data.name=npz", "--set", "data.path=no.npz"],
            "no.npz: no such file",
        ),
        (["train", "{recipe}", "--set", "model.layers[5].linear=3"], "the model outputs [3]"),
        (["train", "--resume", "{tmp}"], "not a run folder"),
        (["train", "{recipe}", "--resume", "{tmp}"], "--resume continues a run"),
        (["train", "{recipe}", "--sweep", "train.lr"], "--sweep train.lr: expected"),
        (["train", "{recipe}", "--sweep", "train.betas=[0.9,0.99"], "unclosed '['"),
        (["train", "{recipe}", "--sweep", "train.betas=[0.9,0.99]]"], "unmatched ']'"),
        (["train"], "give a RECIPE"),
        (["eval", "{tmp}/nothing"], "no best.pt or last.pt"),
        (["eval", "{tmp}", "--split", "dev"], "--split: expected"),
        (["train", "{recipe}", "--set", "train.device=cuda"], "cuda is not available"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    recipe = tiny_recipe(tmp_path)
    (tmp_path / "nothing").mkdir()
    args = [a.format(recipe=recipe, tmp=tmp_path) for a in args]
    r = (
        run_cli(*args, "--out", str(tmp_path / "out"))
        if args[0] == "train" and "--resume" not in args
        else run_cli(*args)
    )
    if "cuda" in needle:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    assert r.code == 2, (r.code, r.err)
    assert needle in r.err and r.err.startswith("error: ") and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err


def test_eval_on_another_folder_maps_classes_by_name(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for root, names in (("train", ("cat", "dog")), ("other", ("dog",)), ("bad", ("emu",))):
        for name in names:
            (tmp_path / root / name).mkdir(parents=True)
            for i in range(12):
                value = 30 if name == "cat" else 220  # dark cats, bright dogs: learnable
                pixels = np.clip(rng.normal(value, 10, (8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / root / name / f"{i}.png")
    recipe = tiny_recipe(
        tmp_path,
        extra=f"data: {{name: folder, path: {tmp_path / 'train'}, val: 0, test: 0.25}}\n"
        "train: {epochs: 8, batch_size: 6, lr: 0.05, device: cpu}\n",
    )
    r = run_cli(
        "train",
        str(recipe),
        "--out",
        str(tmp_path / "r"),
        "--json",
        "--set",
        "model.layers[5].linear=2",
    )
    assert r.code == 0, r.err
    r = run_cli("eval", str(tmp_path / "r"), "--data", f"folder:{tmp_path / 'other'}", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)  # every image is a dog: class index 1 of the model, not 0
    assert [row["support"] for row in report["per_class"]] == [0, 12]
    assert report["accuracy"] == 1.0
    r = run_cli("eval", str(tmp_path / "r"), "--data", f"folder:{tmp_path / 'bad'}")
    assert r.code == 2 and "classes ['emu'] are not among the model's 2 classes" in r.err


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("0.1,0.01", [0.1, 0.01]),
        ("[0.9,0.99], [0.8,0.9]", [[0.9, 0.99], [0.8, 0.9]]),
        ("[],[hflip],[hflip,random_crop]", [[], ["hflip"], ["hflip", "random_crop"]]),
        ("{a: 1, b: [1,2]},{a: 2}", [{"a": 1, "b": [1, 2]}, {"a": 2}]),
        ("'a,b',c", ["a,b", "c"]),
        ("it's,x", ["it's", "x"]),
    ],
)
def test_sweep_values_split_at_top_level_commas(text, values):
    import yaml

    from cnnkit.train.sweep import split_values

    assert [yaml.safe_load(v) for v in split_values(text)] == values


def test_a_log_file_gets_one_line_per_epoch_as_it_ends(tmp_path):
    """stderr not a terminal (a log file, a pipe): a bar there shows nothing until the run is
    over, so each epoch is one plain line, flushed when it ends. The run is SIGKILLed after its
    second checkpoint, and the log already holds the epochs before it, none cut or wrapped."""
    import os
    import subprocess
    import sys

    recipe = tiny_recipe(tmp_path, extra=TINY_TRAIN.replace("epochs: 3", "epochs: 4"))
    run = tmp_path / ("a-long-folder-name-" * 4 + "run")
    env = {**os.environ, "CNNKIT_TEST_KILL_AT": "saved:last.pt:2", "COLUMNS": "80"}
    with open(tmp_path / "train.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "cnnkit", "train", str(recipe), "--out", str(run)],
            stdout=subprocess.DEVNULL, stderr=log, env=env, timeout=120,
        )  # fmt: skip
    assert done.returncode == -9
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert lines[0].startswith("training ") and lines[0].endswith(f"-> {run}")
    epochs = [x for x in lines if x.startswith("epoch ")]
    assert [x.split()[1] for x in epochs][:1] == ["1/4"] and 1 <= len(epochs) <= 2
    metrics = (run / "metrics.csv").read_text().splitlines()
    first = dict(zip(metrics[0].split(","), metrics[1].split(","), strict=True))
    assert f"loss {float(first['train_loss']):.4f}" in epochs[0]
    assert f"val acc {float(first['val_accuracy']):.2%}" in epochs[0]
