"""Issue 14's batch staples: mixup/cutmix, class weights, a class-balanced sampler, SyncBatchNorm.

Oracles: brute force over pixels and labels and scipy's Beta for the mixing (timm itself in
tests/oracle/test_mixup.py), scikit-learn's ``compute_class_weight`` for ``balanced``, torch's
weighted ``F.cross_entropy`` and ``WeightedRandomSampler`` for the loss and the draw, a
binomial bound for the drawn class frequencies, and torch's own SyncBatchNorm conversion.
"""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.train.class_weights import class_weights
from cnnkit.train.config import NoLocation, TrainConfig, parse_train
from cnnkit.train.data.segment import IGNORE
from cnnkit.train.loop import _loss_fn, epoch_generator
from cnnkit.train.mixing import MixDraw, Mixer, draw, mix, soft_cross_entropy
from cnnkit.train.runtime import World
from cnnkit.train.sampling import balanced_weights, epoch_draw
from cnnkit.train.syncbn import check_sync_bn, convert_sync_bn
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe

# ---- mixup / cutmix -------------------------------------------------------------------------


def _smooth(label: int, classes: int, s: float) -> list[float]:
    return [1 - s + s / classes if k == label else s / classes for k in range(classes)]


def test_mixup_blends_each_image_with_its_mirror_and_the_targets_by_lambda():
    x, y = torch.randn(5, 2, 3, 4), torch.tensor([0, 3, 1, 1, 2])
    mixed, target, dominant = mix(x, y, MixDraw(0.3), 4, 0.1)
    for i in range(5):  # brute force: image i with image 4 - i
        j = 4 - i
        assert torch.allclose(mixed[i], 0.3 * x[i] + 0.7 * x[j], atol=1e-6)
        want = [0.3 * a + 0.7 * b for a, b in zip(_smooth(y[i], 4, 0.1), _smooth(y[j], 4, 0.1))]
        assert target[i].tolist() == pytest.approx(want, abs=1e-6)
        assert dominant[i] == y[j]  # lambda 0.3: the mirror holds the larger share


def test_cutmix_pastes_the_box_of_the_mirror_and_lambda_is_its_area():
    c = dataclasses.replace(TrainConfig(), cutmix=1.0)
    rng = np.random.default_rng(1)
    for _ in range(30):
        d = draw(c, rng, 9, 14)
        if d.box is None:
            continue
        top, bottom, left, right = d.box
        x, y = torch.randn(4, 1, 9, 14), torch.tensor([0, 1, 2, 3])
        mixed, _, _ = mix(x, y, d, 4, 0.0)
        for i in range(4):
            for r in range(9):
                for col in range(14):
                    inside = top <= r < bottom and left <= col < right
                    source = x[3 - i] if inside else x[i]
                    assert mixed[i, 0, r, col] == source[0, r, col]
        assert d.lam == 1 - (bottom - top) * (right - left) / (9 * 14)


def test_lambda_is_beta_and_the_branches_follow_their_probabilities():
    from scipy import stats

    c = dataclasses.replace(TrainConfig(), mixup=0.4, cutmix=1.0, mix_prob=0.7)
    c = dataclasses.replace(c, mix_switch_prob=0.25)
    rng, n = np.random.default_rng(0), 4000
    draws = [draw(c, rng, 32, 32) for _ in range(n)]
    mixed = [d for d in draws if d.lam != 1.0]
    cut = [d for d in mixed if d.box is not None]
    for count, total, p in ((len(mixed), n, 0.7), (len(cut), len(mixed), 0.25)):
        assert abs(count - total * p) < 5 * math.sqrt(total * p * (1 - p))  # binomial, 5 sigma
    lams = [d.lam for d in mixed if d.box is None]
    assert stats.kstest(lams, stats.beta(0.4, 0.4).cdf).pvalue > 1e-3


def test_soft_cross_entropy_is_timms_formula_and_unmixed_it_is_smoothed_cross_entropy():
    out, y = torch.randn(6, 5), torch.tensor([0, 4, 2, 2, 1, 3])
    _, target, _ = mix(torch.zeros(6, 1, 2, 2), y, MixDraw(0.6), 5, 0.1)
    by_hand = torch.sum(-target * F.log_softmax(out, dim=-1), dim=-1).mean()
    assert torch.allclose(soft_cross_entropy(out, target), by_hand, atol=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0])
    weighted = torch.sum(-target * w * F.log_softmax(out, dim=-1), dim=-1).mean()
    assert torch.allclose(soft_cross_entropy(out, target, w), weighted, atol=1e-6)
    _, plain, _ = mix(torch.zeros(6, 1, 2, 2), y, MixDraw(1.0), 5, 0.1)
    smoothed = F.cross_entropy(out, y, label_smoothing=0.1)
    assert torch.allclose(soft_cross_entropy(out, plain), smoothed, atol=1e-6)


def test_an_epochs_mixing_is_a_function_of_seed_epoch_and_rank():
    c = dataclasses.replace(TrainConfig(), mixup=0.5, cutmix=0.5, seed=3)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    a, b = Mixer(c, 4, 2, 0), Mixer(c, 4, 2, 0)
    for _ in range(5):
        assert all(torch.equal(p, q) for p, q in zip(a(x, y), b(x, y)))
    other = [Mixer(c, 4, 3, 0)(x, y)[1], Mixer(c, 4, 2, 1)(x, y)[1], Mixer(c, 4, 2, 0)(x, y)[1]]
    assert not torch.equal(other[0], other[2]) and not torch.equal(other[1], other[2])


def test_mixing_stops_after_mix_epochs_and_the_targets_stay_smoothed():
    c = dataclasses.replace(TrainConfig(), mixup=1.0, mix_epochs=2, label_smoothing=0.2)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    assert not torch.equal(Mixer(c, 4, 1, 0)(x, y)[0], x)  # epoch 2 of 2 (0-based 1) mixes
    later, target, dominant = Mixer(c, 4, 2, 0)(x, y)
    assert torch.equal(later, x) and torch.equal(dominant, y)
    assert target.tolist() == [pytest.approx(_smooth(int(k), 4, 0.2)) for k in y]
    with pytest.raises(Exception, match="train.mix_epochs"):
        parse_train({"mix_epochs": 0}, NoLocation())


# ---- class weights --------------------------------------------------------------------------


def _bundle(y: torch.Tensor, classes: int, task: str = "classify") -> SimpleNamespace:
    names = tuple(f"c{i}" for i in range(classes))
    return SimpleNamespace(classes=names, task=task, train=SimpleNamespace(y=y))


def test_balanced_weights_are_sklearns_for_images_and_for_scored_pixels():
    from sklearn.utils.class_weight import compute_class_weight

    c = dataclasses.replace(TrainConfig(), class_weights="balanced")
    y = torch.tensor([0] * 50 + [1] * 7 + [2] * 3 + [3] * 20)
    want = compute_class_weight("balanced", classes=np.arange(4), y=y.numpy())
    assert class_weights(c, _bundle(y, 4)).tolist() == pytest.approx(want.tolist(), rel=1e-12)
    masks = torch.randint(0, 3, (6, 5, 7), generator=torch.Generator().manual_seed(0))
    masks[masks == 2] = torch.where(torch.rand(int((masks == 2).sum())) < 0.8, 2, IGNORE)
    pixels = masks.reshape(-1).numpy()
    want = compute_class_weight("balanced", classes=np.arange(3), y=pixels[pixels != IGNORE])
    got = class_weights(c, _bundle(masks, 3, "segment"))
    assert got.tolist() == pytest.approx(want.tolist(), rel=1e-12)


def test_weighted_losses_are_torchs_weighted_means_and_weightless_batches_score_zero():
    out, y = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    y[0, :2] = IGNORE
    w = torch.tensor([0.5, 2.0, 1.25])
    for s in (0.0, 0.1):
        loss = _loss_fn("segment", dataclasses.replace(TrainConfig(), label_smoothing=s), w)
        want = F.cross_entropy(out, y, weight=w, label_smoothing=s)
        assert torch.allclose(loss(out, y), want, atol=1e-6)
    assert loss(out, torch.full_like(y, IGNORE)).item() == 0.0
    logits, labels = torch.randn(6, 3), torch.tensor([0, 2, 1, 1, 0, 2])
    for s in (0.0, 0.1):
        loss = _loss_fn("classify", dataclasses.replace(TrainConfig(), label_smoothing=s), w)
        want = F.cross_entropy(logits, labels, weight=w, label_smoothing=s)
        assert torch.allclose(loss(logits, labels), want, atol=1e-6)
    zero = torch.tensor([0.0, 1.0, 1.0])  # a batch of class 0 alone weighs nothing: 0, not NaN
    assert _loss_fn("classify", TrainConfig(), zero)(logits, torch.zeros(6, dtype=torch.long)) == 0


def test_class_weights_errors_are_one_line(tmp_path):
    c = dataclasses.replace(TrainConfig(), class_weights=(1.0, 2.0))
    with pytest.raises(Exception, match=r"train.class_weights: 2 weights for 3 classes"):
        class_weights(c, _bundle(torch.tensor([0, 1, 2]), 3))
    c = dataclasses.replace(TrainConfig(), class_weights="balanced")
    with pytest.raises(Exception, match=r"class 'c2' has no image"):
        class_weights(c, _bundle(torch.tensor([0, 1, 1]), 3))
    for bad in ("equal", [1, -1], [0, 0], [1], [1, float("nan")]):
        with pytest.raises(Exception, match="train.class_weights"):
            parse_train({"class_weights": bad}, NoLocation())
    recipe = tiny_recipe(tmp_path)
    sets = ("--set", "train.class_weights=[1,2]")
    r = run_cli("train", str(recipe), *sets, "--out", str(tmp_path / "r"))
    assert r.code == 2 and "2 weights for 10 classes" in r.err and r.err.count("\n") == 1, r.err
    assert not (tmp_path / "r").exists()  # refused before the run folder was made


# ---- the balanced sampler -------------------------------------------------------------------


def test_balanced_draw_is_weighted_random_samplers_and_draws_classes_uniformly():
    from torch.utils.data import WeightedRandomSampler

    y = torch.tensor([0] * 900 + [1] * 80 + [2] * 20)  # 45:4:1
    mine = epoch_draw("balanced", y, epoch_generator(5, 2))
    sampler = WeightedRandomSampler(
        (1.0 / torch.bincount(y)[y]).tolist(), len(y), True, generator=epoch_generator(5, 2)
    )
    assert mine.tolist() == list(sampler)
    assert balanced_weights(y)[[0, 900, 980]].tolist() == [1 / 900, 1 / 80, 1 / 20]
    counts = torch.zeros(3)
    for epoch in range(10):
        counts += torch.bincount(
            y[epoch_draw("balanced", y, epoch_generator(0, epoch))], minlength=3
        )
    n, p = 10 * len(y), 1 / 3
    assert (counts - n * p).abs().max() < 5 * math.sqrt(n * p * (1 - p)), counts
    plain = epoch_draw("shuffle", y, epoch_generator(5, 2))
    assert torch.equal(plain, torch.randperm(len(y), generator=epoch_generator(5, 2)))


# ---- SyncBatchNorm --------------------------------------------------------------------------


def _bn_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.Sequential(torch.nn.BatchNorm1d(3)),
    )


def test_sync_bn_converts_every_batchnorm_under_torchrun_and_is_a_no_op_alone():
    c = dataclasses.replace(TrainConfig(), sync_bn=True)
    model = _bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    alone = convert_sync_bn(model, c, World())
    assert [type(m) for m in alone.modules()].count(torch.nn.SyncBatchNorm) == 0
    two = convert_sync_bn(_bn_model(), c, World(rank=0, size=2))
    kinds = [type(m).__name__ for m in two.modules()]
    assert kinds.count("SyncBatchNorm") == 2 and "BatchNorm2d" not in kinds
    assert list(two.state_dict()) == list(before)
    off = convert_sync_bn(_bn_model(), TrainConfig(), World(rank=0, size=2))
    assert "SyncBatchNorm" not in [type(m).__name__ for m in off.modules()]
    with pytest.raises(Exception, match="train.sync_bn: torch's SyncBatchNorm runs on CUDA only"):
        check_sync_bn(c, World(rank=1, size=2), torch.device("cpu"))
    check_sync_bn(c, World(), torch.device("cpu"))  # one process: nothing to refuse


def test_torch_cpu_syncbatchnorm_cannot_train_in_a_process_group(tmp_path):
    """Why sync_bn is refused off CUDA: torch itself raises there (if this starts passing,
    torch learned to sync on the CPU and the refusal can go)."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        bn = torch.nn.SyncBatchNorm(3).train()
        with pytest.raises(ValueError, match="SyncBatchNorm expected input tensor to be on GPU"):
            bn(torch.randn(4, 3, 2, 2))
    finally:
        dist.destroy_process_group()


# ---- through cnnkit train -------------------------------------------------------------------

ALL = """\
data: {name: synthetic, samples: 120, classes: 10}
train: {epochs: 2, batch_size: 20, lr: 0.05, device: cpu, mixup: 0.4, cutmix: 1.0,
        label_smoothing: 0.1, class_weights: balanced, sampler: balanced, sync_bn: true}
"""


def _last(run):
    from cnnkit.train.checkpoint import load_checkpoint

    return load_checkpoint(run / "last.pt")["model"]


def test_a_mixed_weighted_balanced_run_resumes_exactly_and_keeps_its_weights(tmp_path):
    recipe = tiny_recipe(tmp_path, ALL)
    whole, part = tmp_path / "whole", tmp_path / "part"
    done = run_cli("train", str(recipe), "--out", str(whole), "--json")
    assert done.code == 0, done.err
    summary = json.loads(done.out)
    assert len(summary["class_weights"]) == 10 and summary["final"]["train_accuracy"] > 0
    one = ("--set", "train.epochs=1")
    assert run_cli("train", str(recipe), *one, "--out", str(part), "--json").code == 0
    r = run_cli("train", "--resume", str(part), "--set", "train.epochs=2", "--json")
    assert r.code == 0, r.err
    a, b = _last(whole), _last(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    off = tiny_recipe(tmp_path, ALL.replace("mixup: 0.4, cutmix: 1.0", "mixup: 0"), "off.yaml")
    assert run_cli("train", str(off), "--out", str(tmp_path / "off"), "--json").code == 0
    assert not all(torch.equal(a[k], v) for k, v in _last(tmp_path / "off").items())
    for key in ("train.mixup=0.1", "train.sampler=shuffle", "train.class_weights=null"):
        r = run_cli("train", "--resume", str(part), "--set", key)
        assert r.code == 2 and f"--set {key.split('=')[0]}:" in r.err, r.err


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ("{name: shapes, task: segment, samples: 8}", "train.mixup=0.2"),
        ("{name: shapes, task: segment, samples: 8}", "train.sampler=balanced"),
        ("{name: synthetic, samples: 8, task: regress}", "train.cutmix=1"),
        ("{name: synthetic, samples: 8, task: regress}", "train.class_weights=balanced"),
    ],
)
def test_label_keys_on_other_tasks_are_one_line_naming_the_key(tmp_path, data, key):
    recipe = tiny_recipe(tmp_path, f"data: {data}\ntrain: {{epochs: 1, device: cpu}}\n")
    name = key.split("=")[0]
    for command in (("train", str(recipe), "--print-config"), ("recipes", str(recipe))):
        r = run_cli(*command, "--set", key)
        assert r.code == 2 and f"{name}: needs data.task" in r.err, (command, r.err)
        assert r.err.count("\n") == 1 and f"--set {key}:" in r.err, r.err  # where it came from


SEGMENT = """\
input: [3, 16, 16]
model:
  layers:
    - {conv: {out: 4, k: 3, p: 1}}
data: {name: shapes, task: segment, samples: 20}
train: {epochs: 1, batch_size: 10, device: cpu, class_weights: balanced}
"""


def test_segment_class_weights_are_the_train_splits_pixel_balance(tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    from cnnkit.train.data import load_data
    from cnnkit.train.plan import load_with_overrides, sections

    recipe = tmp_path / "seg.yaml"
    recipe.write_text(SEGMENT)
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "seg"), "--json")
    assert r.code == 0, r.err
    data_config, _ = sections(load_with_overrides(recipe))
    pixels = load_data(data_config, (3, 16, 16)).train.y.reshape(-1).numpy()
    want = compute_class_weight("balanced", classes=np.arange(4), y=pixels[pixels != IGNORE])
    assert json.loads(r.out)["class_weights"] == pytest.approx(want.tolist(), rel=1e-12)


def test_sync_bn_under_torchrun_on_the_cpu_is_refused_before_the_run_folder(tmp_path, monkeypatch):
    from cnnkit.errors import InputError
    from cnnkit.train import experiment
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    recipe = tiny_recipe(tmp_path, ALL)
    monkeypatch.setattr(experiment, "start_world", lambda device: World(rank=0, size=2))
    plan = plan_from_recipe(load_with_overrides(recipe), "test")
    with pytest.raises(InputError, match="train.sync_bn: .* 2 processes train on cpu"):
        experiment.train_run(plan, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ranks_take_their_shares_of_the_one_balanced_draw_and_resume_redraws_it():
    """Under torchrun every rank draws the same balanced order and takes every N-th image of
    it, so N processes see exactly the images (and batches) one process sees."""
    from cnnkit.train.data import Split
    from cnnkit.train.loop import _epoch_order

    y = torch.tensor([0] * 50 + [1] * 9 + [2] * 3)
    split = Split(torch.zeros(len(y), 1, 2, 2), y)
    c = dataclasses.replace(TrainConfig(), sampler="balanced", seed=4)

    def order(rank: int, size: int, epoch: int = 1) -> list[int]:
        loop = SimpleNamespace(config=c, world=World(rank=rank, size=size))
        return _epoch_order(loop, split, epoch)[0].tolist()

    one = order(0, 1)
    assert one == epoch_draw("balanced", y, epoch_generator(4, 1)).tolist()
    assert one == order(0, 1)  # a resumed epoch draws it again
    shares = [order(r, 2) for r in (0, 1)]
    assert [i for pair in zip(*shares) for i in pair] == one  # 62 images: none trimmed
    assert one != order(0, 1, epoch=2)


def test_a_label_key_written_in_the_recipe_is_named_with_its_file_and_line(tmp_path):
    extra = (
        "data: {name: synthetic, samples: 8, task: regress}\ntrain:\n  epochs: 1\n  mixup: 0.2\n"
    )
    recipe = tiny_recipe(tmp_path, extra)
    line = recipe.read_text().splitlines().index("  mixup: 0.2") + 1
    r = run_cli("train", str(recipe), "--print-config")
    assert r.code == 2 and f"tiny.yaml:{line}: train.mixup: needs data.task" in r.err, r.err


def test_mid_epoch_checkpoints_with_mixing_are_refused_in_one_line() -> None:
    """A mid-epoch record holds no mixing draws: its resume would not be exact."""
    from cnnkit.train.config import NoLocation, check_train_task, parse_data, parse_train

    train = parse_train({"mixup": 0.4, "checkpoint_every": 5}, NoLocation("r.yaml"))
    data = parse_data({}, NoLocation("r.yaml"))
    with pytest.raises(Exception, match=r"train\.checkpoint_every: a mid-epoch checkpoint"):
        check_train_task(train, data, NoLocation("r.yaml"))
