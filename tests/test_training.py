"""The training loop: determinism, exact resume, divergence, early stopping, grad stats."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.experiment import train_run
from cnnkit.train.loop import Diverged, Silent
from cnnkit.train.plan import load_with_overrides, plan_from_recipe
from tests.clitools import run_cli
from tests.trainkit import summary, tiny_recipe

STABLE = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def metrics(run):
    with open(run / "metrics.csv") as handle:
        return [{k: row[k] for k in STABLE} for row in csv.DictReader(handle)]


def weights(path):
    return load_checkpoint(path)["model"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_metrics_and_weights(tmp_path):
    recipe = tiny_recipe(tmp_path, extra=TINY_AUG)
    for name in ("a", "b"):
        r = run_cli("train", str(recipe), "--out", str(tmp_path / name), "--json")
        assert r.code == 0, r.err
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")
    assert same_weights(weights(tmp_path / "a/last.pt"), weights(tmp_path / "b/last.pt"))
    r = run_cli(
        "train", str(recipe), "--out", str(tmp_path / "c"), "--set", "train.seed=1", "--json"
    )
    assert metrics(tmp_path / "c") != metrics(tmp_path / "a")


TINY_AUG = """\
data:
  name: synthetic
  samples: 200
  augment: [hflip, {random_crop: {padding: 1}}]
train:
  epochs: 3
  batch_size: 16
  lr: 0.05
  scheduler: cosine
  warmup_epochs: 0.5
  device: cpu
"""


class StopAt(Silent):
    """Interrupts the run when epoch ``epoch`` (0-based) starts, like Ctrl-C would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_start(self, epoch, epochs, steps):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    recipe = tiny_recipe(tmp_path, extra=TINY_AUG.replace("epochs: 3", "epochs: 4"))
    plan = plan_from_recipe(load_with_overrides(recipe), "test")
    train_run(plan, out=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train_run(
            plan_from_recipe(load_with_overrides(recipe), "test"),
            out=tmp_path / "cut",
            reporter=StopAt(2),
        )
    assert load_checkpoint(tmp_path / "cut/last.pt")["epoch"] == 2
    r = run_cli("train", "--resume", str(tmp_path / "cut"), "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["epochs"] == 4
    assert same_weights(weights(tmp_path / "full/last.pt"), weights(tmp_path / "cut/last.pt"))
    assert metrics(tmp_path / "full") == metrics(tmp_path / "cut")


class TurnsNaN(torch.nn.Module):
    """A linear classifier whose output becomes NaN once ``poison`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)
        self.poison = False

    def forward(self, x):
        out = self.fc(x.flatten(1))
        return out * float("nan") if self.poison else out


class PoisonAt(Silent):
    def __init__(self, model, epoch):
        self.model, self.epoch = model, epoch

    def epoch_start(self, epoch, epochs, steps):
        self.model.poison = epoch >= self.epoch


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    plan = plan_from_recipe(load_with_overrides(tiny_recipe(tmp_path)), "test")
    model = TurnsNaN()
    plan.build = lambda: model
    with pytest.raises(Diverged, match=r"loss became nan in epoch 2"):
        train_run(plan, out=tmp_path / "run", reporter=PoisonAt(model, 1))
    assert load_checkpoint(tmp_path / "run/last.pt")["epoch"] == 1
    assert torch.isfinite(weights(tmp_path / "run/last.pt")["fc.weight"]).all()
    assert summary(tmp_path / "run")["status"] == "diverged"


def test_divergence_from_the_cli_is_one_line_exit_1(tmp_path):
    recipe = tiny_recipe(tmp_path)
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "r"), "--set", "train.lr=1e6")
    assert r.code == 1 and "error: loss became" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()[-1]) > 0


def test_early_stopping(tmp_path):
    recipe = tiny_recipe(tmp_path)
    sets = ["train.lr=1e-12", "train.early_stop=2", "train.epochs=10"]
    r = run_cli(
        "train",
        str(recipe),
        "--out",
        str(tmp_path / "r"),
        "--json",
        *[a for s in sets for a in ("--set", s)],
    )
    assert r.code == 0, r.err
    document = json.loads(r.out)
    assert document["status"] == "early_stopped" and document["epochs"] == 3


def test_grad_stats_csv(tmp_path):
    r = run_cli(
        "train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "r"), "--json", "--grad-stats"
    )
    assert r.code == 0, r.err
    with open(tmp_path / "r/grad_stats.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["parameter"] for row in rows} == {"c1.weight", "c1.bias", "fc.weight", "fc.bias"}
    assert {row["epoch"] for row in rows} == {"1", "2", "3"}
    assert all(float(row["grad_norm"]) > 0 for row in rows)


REGRESS = """\
data: {name: synthetic, task: regress, samples: 200}
train: {epochs: 2, batch_size: 20, optimizer: adam, lr: 0.01, device: cpu}
"""


def test_regression_end_to_end(tmp_path):
    recipe = tiny_recipe(tmp_path, extra=REGRESS)
    r = run_cli(
        "train",
        str(recipe),
        "--out",
        str(tmp_path / "r"),
        "--json",
        "--set",
        "model.layers[5].linear=1",
    )
    assert r.code == 0, r.err
    test = json.loads(r.out)["test"]
    assert test["task"] == "regress" and {"mse", "mae", "r2"} <= set(test)
    r = run_cli("eval", str(tmp_path / "r"), "--json")
    assert r.code == 0 and json.loads(r.out)["mse"] == pytest.approx(test["mse"])


@pytest.mark.parametrize(
    "sets",
    [
        ["train.optimizer=adam", "train.scheduler=step", "train.step_size=1"],
        ["train.optimizer=adamw", "train.weight_decay=0.01", "train.scheduler=onecycle"],
        ["train.label_smoothing=0.1", "train.clip_grad_norm=1.0", "train.nesterov=true"],
        ["train.amp=bf16", "train.warmup_epochs=1"],
        ["data.augment=[random_resized_crop]", "data.resize=10"],
    ],
)
def test_option_combinations_train(tmp_path, sets):
    args = [a for s in sets for a in ("--set", s)]
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(tmp_path / "r"), "--json", *args)
    assert r.code == 0, r.err
    document = json.loads(r.out)
    assert document["status"] == "completed" and document["test"]["accuracy"] > 0.2


REGRESS_3 = """\
input: [3, 8, 8]
model:
  layers: [{conv: {out: 4, k: 3}}, relu, flatten, {linear: 3}]
data: {name: synthetic, task: regress, samples: 200, val: 0.2}
train: {epochs: 2, batch_size: 20, optimizer: adam, lr: 0.01, device: cpu}
"""


def test_val_loss_is_the_mse_over_images_and_targets(tmp_path):
    """val_loss is the training criterion (mean over images and target columns), checked
    against scikit-learn on the val split with the final weights; it was T times that."""
    from sklearn.metrics import mean_squared_error

    from cnnkit.train.data import load_data

    path = tmp_path / "r3.yaml"
    path.write_text(REGRESS_3, encoding="utf-8")
    plan = plan_from_recipe(load_with_overrides(path), "test")
    train_run(plan, out=tmp_path / "run")
    model = plan.build()
    model.load_state_dict(weights(tmp_path / "run/last.pt"))
    val = load_data(plan.data, plan.input_shape).val
    with torch.no_grad():
        pred = model.eval()(val.x)
    assert val.y.shape[1] == 3
    row = summary(tmp_path / "run")["final"]
    assert row["val_loss"] == pytest.approx(mean_squared_error(val.y, pred), rel=1e-5)


def test_regression_best_checkpoint_follows_val_loss_not_train_loss():
    """The default monitor (val_accuracy) has no meaning for regression: with a val split,
    best.pt follows val_loss; it used to fall back to train_loss."""
    from cnnkit.train.config import TrainConfig
    from cnnkit.train.loop import TrainState, record

    c, state = TrainConfig(epochs=3), TrainState()
    for epoch, (train_loss, val_loss) in enumerate([(3.0, 1.0), (2.0, 2.0), (1.0, 3.0)], 1):
        record(state, {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}, c)
    assert (state.monitor, state.best_epoch, state.best_value) == ("val_loss", 1, 1.0)
    plain = TrainState()  # no val split: the train loss
    for epoch, loss in enumerate([3.0, 1.0, 2.0], 1):
        record(plain, {"epoch": epoch, "train_loss": loss}, c)
    assert (plain.monitor, plain.best_epoch) == ("train_loss", 2)


@pytest.mark.parametrize("augment", ["hflip", "random_crop", "random_resized_crop"])
def test_geometric_augment_with_regression_is_refused_at_the_key(tmp_path, augment):
    """A flip or crop moves the image, not coordinate targets: one line naming data.augment
    (it used to train silently on wrong targets)."""
    recipe = tiny_recipe(tmp_path, extra=REGRESS)
    sets = ["model.layers[5].linear=1", f"data.augment=[{augment}]"]
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "r"), *_sets(sets))
    assert r.code == 2, r.err
    assert "data.augment" in r.err and augment in r.err and "augment_keeps_targets" in r.err
    assert "Traceback" not in r.err and not (tmp_path / "r").exists()


def test_geometric_augment_with_regression_on_opt_in_trains(tmp_path):
    """Targets invariant under a flip (synthetic: each channel's mean) may opt in."""
    recipe = tiny_recipe(tmp_path, extra=REGRESS)
    sets = ["model.layers[5].linear=1", "data.augment=[hflip]", "data.augment_keeps_targets=true"]
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "r"), "--json", *_sets(sets))
    assert r.code == 0, r.err
    assert json.loads(r.out)["status"] == "completed"
    r = run_cli("eval", str(tmp_path / "r"), "--json")  # the resolved recipe keeps the opt-in
    assert r.code == 0, r.err


def _sets(sets):
    return [a for s in sets for a in ("--set", s)]


class Records(Silent):
    def __init__(self):
        self.stats = []

    def step(self, step, stats):
        if stats is not None:
            self.stats.append(stats)


def test_regression_progress_shows_no_accuracy(tmp_path):
    """Regression progress reports no accuracy (the bar showed a constant 0.00%)."""
    plan = plan_from_recipe(
        load_with_overrides(tiny_recipe(tmp_path, extra=REGRESS), ["model.layers[5].linear=1"]),
        "test",
    )
    reporter = Records()
    train_run(plan, out=tmp_path / "run", reporter=reporter)
    assert reporter.stats and all(set(s) == {"loss"} for s in reporter.stats)
