"""``train --grad-stats`` compares the first and last layer's gradients; ``eval --plot`` draws
the training curves (what the picture shows: tests/test_plots.py). Both feed docs/guide.md,
which shows them on real runs."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cnnkit.train.experiment import grad_summary
from tests.clitools import run_cli
from tests.trainkit import summary, tiny_recipe


def test_grad_summary_compares_first_and_last_weights():
    norms = {"c1.weight": 0.002, "c1.bias": 0.5, "bn.weight": 0.9, "fc.weight": 0.4, "fc.bias": 1}
    got = grad_summary(3, norms, ["c1.weight", "fc.weight"])
    assert got["epoch"] == 3
    assert got["first"] == {"parameter": "c1.weight", "grad_norm": 0.002}
    assert got["last"] == {"parameter": "fc.weight", "grad_norm": 0.4}
    assert got["ratio"] == pytest.approx(0.005)
    assert grad_summary(1, {"w": 1.0, "v": 0.0}, ["w", "v"])["ratio"] is None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grads")
    out = tmp / "run"
    r = run_cli("train", str(tiny_recipe(tmp)), "--out", str(out), "--grad-stats")
    assert r.code == 0, r.err
    return out, r


def test_train_reports_the_last_epochs_gradient_ratio(run):
    out, r = run
    grads = summary(out)["grad_stats"]
    with open(out / "grad_stats.csv", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["epoch"] == "3"]
    csv_norms = {row["parameter"]: float(row["grad_norm"]) for row in rows}
    assert grads["epoch"] == 3
    assert grads["first"]["parameter"] == "c1.weight"  # biases are left out
    assert grads["last"]["parameter"] == "fc.weight"
    assert grads["first"]["grad_norm"] == pytest.approx(csv_norms["c1.weight"], rel=1e-5)
    assert grads["ratio"] == pytest.approx(grads["first"]["grad_norm"] / grads["last"]["grad_norm"])
    assert "first layer c1.weight" in r.out and "first/last" in r.out


def test_without_grad_stats_nothing_is_added(tmp_path):
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "r"), "--json")
    assert r.code == 0, r.err
    assert "grad_stats" not in json.loads(r.out)
    assert "grad_stats" not in summary(tmp_path / "r")


def test_sweep_table_has_the_gradient_columns(tmp_path):
    recipe = tiny_recipe(tmp_path)
    runs = str(tmp_path / "runs")
    args = ("train", str(recipe), "--runs", runs, "--grad-stats", "--sweep", "train.lr=0.05,0.1")
    r = run_cli(*args, "--csv")
    assert r.code == 0, r.err
    import pandas as pd

    table = pd.read_csv(io.StringIO(r.out))
    assert {"grad_first", "grad_last", "grad_ratio"} <= set(table)
    assert (table["grad_ratio"] > 0).all()


def test_eval_plot_draws_a_png(run, tmp_path):
    from PIL import Image

    out, _ = run
    picture = tmp_path / "img" / "curves.png"
    r = run_cli("eval", str(out), "--plot", str(picture))
    assert r.code == 0, r.err
    assert f"training curves -> {picture}" in r.out
    with Image.open(picture) as image:  # loss, accuracy and learning rate (tests/test_plots.py)
        assert image.format == "PNG" and image.size == (1350, 380)
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # train and val lines
    assert not [p for p in picture.parent.iterdir() if p.name.startswith(".")]  # no temp left

    r = run_cli("eval", str(out / "best.pt"), "--plot", str(picture), "--log-loss", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["plot"] == {"path": str(picture), "metrics": str(out / "metrics.csv")}


def test_eval_plot_needs_the_metrics(run, tmp_path):
    out, _ = run
    lone = tmp_path / "lone.pt"
    lone.write_bytes((out / "best.pt").read_bytes())
    r = run_cli("eval", str(lone), "--plot", str(tmp_path / "x.png"))
    assert r.code == 2
    assert "metrics.csv" in r.err and not (tmp_path / "x.png").exists()
