"""Issue 14's step staples, each against an independent oracle: an EMA of the weights
(``torch.optim.swa_utils.AveragedModel`` and a brute-force loop), weight-decay groups (a
hand-built torch optimiser), gradient accumulation (the step of one large batch), and
mid-epoch checkpoints (the uninterrupted run, bit for bit, after a Ctrl-C and a SIGKILL)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig
from cnnkit.train.ema import Ema
from cnnkit.train.optim import make_optimizer
from cnnkit.train.param_groups import param_groups
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe


def _net(norm: bool = True) -> nn.Module:
    torch.manual_seed(0)
    if not norm:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.LayerNorm(8),
        nn.Linear(8, 3),
    )


def _steps(model: nn.Module, optimizer: torch.optim.Optimizer, n: int = 3, after=None) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(n):
        x, y = torch.randn(5, 3, 6, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if after is not None:
            after(model)


# Named by hand from the layers above: the conv and linear weights are decayed, every bias
# and the batch-/layer-norm weights are not.
DECAYED = ["0.weight", "4.weight", "6.weight"]
KEPT = ["0.bias", "1.weight", "1.bias", "4.bias", "5.weight", "5.bias", "6.bias"]


def test_weight_decay_skips_biases_and_norm_weights_like_a_hand_built_optimiser():
    model = _net()
    ids = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, 0.1, decay_all=False)
    assert [[ids[id(p)] for p in g["params"]] for g in groups] == [DECAYED, KEPT]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    for optimizer in ("sgd", "adamw"):
        c = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.1)
        mine, theirs, every = _net(), _net(), _net()
        _steps(mine, make_optimizer(mine, c))
        named = dict(theirs.named_parameters())
        hand = [
            {"params": [named[n] for n in DECAYED], "weight_decay": 0.1},
            {"params": [named[n] for n in KEPT], "weight_decay": 0.0},
        ]
        make = {
            "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            "adamw": lambda p: torch.optim.AdamW(p, lr=0.1),
        }[optimizer]
        _steps(theirs, make(hand))
        for name, p in mine.named_parameters():
            torch.testing.assert_close(p, named[name], rtol=0, atol=0, msg=name)
        # The default differs from decaying everything (the old rule), which opting in restores.
        all_decay = replace_config(c, weight_decay_norm_bias=True)
        _steps(every, make_optimizer(every, all_decay))
        plain = _net()
        _steps(plain, make([{"params": list(plain.parameters()), "weight_decay": 0.1}]))
        old = dict(every.named_parameters())
        assert not torch.equal(old["1.weight"], dict(mine.named_parameters())["1.weight"])
        for name, p in plain.named_parameters():
            torch.testing.assert_close(p, old[name], rtol=0, atol=0, msg=name)


def replace_config(c: TrainConfig, **changes) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(c, **changes)


def test_ema_is_torchs_averaged_model_with_an_ema_average():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = _net(norm=False)
    ema = Ema(model, 0.9)
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))

    def both(m):
        ema.update(m)
        averaged.update_parameters(m)

    _steps(model, torch.optim.SGD(model.parameters(), lr=0.5), n=6, after=both)
    ours, theirs = ema.module.state_dict(), averaged.module.state_dict()
    assert ours.keys() == theirs.keys() and ema.updates == 6
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-6, atol=1e-7)
    assert not torch.allclose(ours["3.weight"], model.state_dict()["3.weight"])


def test_ema_with_warm_up_and_batchnorm_buffers_is_the_brute_force_average():
    model = _net()
    ema = Ema(model, 0.95, warmup=True)
    shadow = {k: v.clone() for k, v in model.state_dict().items()}
    count = [0]

    def both(m):
        ema.update(m)
        count[0] += 1
        n = count[0]
        decay = 0.0 if n == 1 else min(0.95, 1 - (1 + (n - 1)) ** (-2 / 3))  # timm get_decay
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                shadow[k] = decay * shadow[k] + (1 - decay) * v
            else:
                shadow[k] = v.clone()

    _steps(model, torch.optim.SGD(model.parameters(), lr=0.5), n=8, after=both)
    ours = ema.module.state_dict()
    for key in ours:
        torch.testing.assert_close(ours[key], shadow[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(ours["1.num_batches_tracked"]) == 8  # an integer buffer: copied
    again = Ema(_net(), 0.95, warmup=True)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 8
    assert all(torch.equal(again.module.state_dict()[k], ours[k]) for k in ours)


NO_DROPOUT = """\
input: [1, 8, 8]
model:
  layers:
    - {conv: {out: 4, k: 3}, name: c1}
    - relu
    - maxpool: 2
    - flatten
    - {linear: 10, name: fc}
"""


def _train(tmp_path, name: str, train: str, model: str = NO_DROPOUT, *args: str):
    extra = f"data: {{name: synthetic, samples: 200, classes: 10}}\ntrain: {{{train}}}\n"
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(model + extra, encoding="utf-8")
    run = tmp_path / name
    r = run_cli("train", str(recipe), "--out", str(run), "--json", *args)
    assert r.code == 0, r.err
    return run


def _rows(run):
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def _model(run, name="last.pt", part="model"):
    checkpoint = load_checkpoint(run / name)
    return checkpoint[part] if part == "model" else checkpoint[part]["model"]


def test_accumulating_4_batches_of_8_is_one_batch_of_32(tmp_path):
    """140 train images: 4 steps of 32 and a trailing step of 12 (one micro-batch of 8 and one
    of 4), weighted by images; the cosine schedule with warm-up steps per optimiser step."""
    common = "epochs: 2, lr: 0.1, device: cpu, scheduler: cosine, warmup_epochs: 0.5"
    big = _train(tmp_path, "big", f"{common}, batch_size: 32")
    small = _train(tmp_path, "small", f"{common}, batch_size: 8, accumulate: 4")
    plain = _train(tmp_path, "plain", f"{common}, batch_size: 8")
    a, b = _model(big), _model(small)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.allclose(_model(plain)["fc.weight"], a["fc.weight"], atol=1e-3)
    for mine, theirs in zip(_rows(small), _rows(big), strict=True):
        assert mine["lr"] == theirs["lr"]
        assert float(mine["train_loss"]) == pytest.approx(float(theirs["train_loss"]), rel=1e-5)
        assert float(mine["val_loss"]) == pytest.approx(float(theirs["val_loss"]), rel=1e-5)


def test_accumulation_under_bf16_autocast_is_close_to_the_large_batch(tmp_path):
    common = "epochs: 1, lr: 0.1, device: cpu, amp: bf16"
    big = _train(tmp_path, "big", f"{common}, batch_size: 32")
    small = _train(tmp_path, "small", f"{common}, batch_size: 8, accumulate: 4")
    a, b = _model(big), _model(small)
    for key in a:
        assert torch.isfinite(b[key]).all()
        torch.testing.assert_close(b[key], a[key], rtol=0.05, atol=0.02, msg=key)


def test_ema_is_scored_saved_and_evaluated_beside_the_raw_weights(tmp_path):
    run = _train(tmp_path, "ema", "epochs: 3, batch_size: 20, lr: 0.1, device: cpu, ema: 0.8")
    rows = _rows(run)
    assert {"val_loss_ema", "val_accuracy_ema"} <= set(rows[0])
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert last["ema"]["updates"] == 3 * 7  # 140 images in batches of 20, 3 epochs
    assert last["ema"]["model"].keys() == last["model"].keys()
    for weights, column in (("ema", "val_loss_ema"), ("raw", "val_loss")):
        r = run_cli("eval", str(run), "--split", "val", "--weights", weights, "--json")
        assert r.code == 0, r.err
        report = json.loads(r.out)
        assert report["weights"] == weights and report["checkpoint"].endswith("best.pt")
        row = rows[best["epoch"] - 1]
        assert report["loss"] == pytest.approx(float(row[column]), rel=1e-5)
    assert float(rows[-1]["val_loss_ema"]) != float(rows[-1]["val_loss"])
    recorded = json.loads((run / "summary.json").read_text())["test_ema"]
    r = run_cli("eval", str(run), "--weights", "ema", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["accuracy"] == recorded["accuracy"]
    assert report["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
    shown = run_cli("train", "--resume", str(run))  # finished: its test lines again
    assert shown.code == 0 and "EMA test accuracy" in shown.out, shown.out
    table = run_cli(
        "train",
        str(tmp_path / "ema.yaml"),
        "--set",
        "train.epochs=1",
        "--out",
        str(tmp_path / "table"),
    )
    assert table.code == 0 and "EMA val acc" in table.out, table.out
    plain = _train(tmp_path, "plain", "epochs: 1, batch_size: 20, device: cpu")
    r = run_cli("eval", str(plain), "--weights", "ema")
    assert r.code == 2 and "has no EMA weights" in r.err and r.err.count("\n") == 1, r.err
    assert "ema" not in load_checkpoint(plain / "last.pt")
    r = run_cli("eval", str(plain), "--weights", "mean")
    assert r.code == 2 and "--weights: expected raw or ema" in r.err, r.err


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("train.ema=1", "train.ema"),
        ("train.ema=0", "train.ema"),
        ("train.ema_warmup=3", "train.ema_warmup"),
        ("train.accumulate=0", "train.accumulate"),
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("train.weight_decay_norm_bias=maybe", "train.weight_decay_norm_bias"),
    ],
)
def test_bad_step_keys_are_one_line(tmp_path, setting, said):
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--set", setting, "--print-config")
    assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("train.ema=0.5", "averaged weights in last.pt were made with that decay"),
        ("train.accumulate=2", "optimiser steps"),
        ("train.weight_decay_norm_bias=true", "parameter groups"),
    ],
)
def test_a_resume_refuses_to_change_a_step_key_with_the_reason(tmp_path, setting, said):
    run = _train(tmp_path, "run", "epochs: 1, batch_size: 40, device: cpu, ema: 0.9")
    r = run_cli("train", "--resume", str(run), "--set", setting)
    assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err
