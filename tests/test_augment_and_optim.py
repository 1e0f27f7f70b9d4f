"""Augmentations (batched, seeded) and the optimiser/schedule tables."""

from __future__ import annotations

import math

import pytest
import torch

from cnnkit.train import config as runconfig
from cnnkit.train.config import NoLocation, parse_data, parse_train
from cnnkit.train.data.augment import AUGMENTS, hflip, make_augment, random_crop
from cnnkit.train.optim import OPTIMIZERS, SCHEDULES, lr_multiplier


def test_tables_match_the_config_vocabulary():
    assert set(AUGMENTS) == set(runconfig.AUGMENTS)
    assert set(OPTIMIZERS) == set(runconfig.OPTIMIZERS)
    assert set(SCHEDULES) == set(runconfig.SCHEDULERS)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = random_crop(x, {"padding": 2}, (6, 6), torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i : i + 6, j : j + 6] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)


def test_hflip_flips_exactly_the_drawn_images():
    x = torch.randn(64, 1, 3, 3)
    out = hflip(x, {"p": 0.5}, (3, 3), torch.Generator().manual_seed(1))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


@pytest.mark.parametrize("kind", sorted(AUGMENTS))
def test_every_augmentation_gives_the_input_size_and_replays_with_its_seed(kind):
    augments = parse_data({"augment": [kind]}, NoLocation()).augment
    apply = make_augment(augments, (8, 8))
    x = torch.randn(5, 3, 10, 10)
    a = apply(x, torch.Generator().manual_seed(7))
    b = apply(x, torch.Generator().manual_seed(7))
    assert a.shape == (5, 3, 8, 8) and torch.equal(a, b)


def schedule(**raw):
    return parse_train({"epochs": 10, "lr": 0.1, **raw}, NoLocation())


def test_warmup_then_cosine_to_min_lr():
    c = schedule(scheduler="cosine", warmup_epochs=1, min_lr=0.001)
    steps = 10
    assert lr_multiplier(0, steps, c) == pytest.approx(0.1)
    assert lr_multiplier(9, steps, c) == pytest.approx(1.0)
    assert lr_multiplier(10, steps, c) == pytest.approx(1.0)
    assert lr_multiplier(100, steps, c) == pytest.approx(0.01)
    mid = lr_multiplier(55, steps, c)
    assert mid == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_step_and_onecycle_shapes():
    c = schedule(scheduler="step", step_size=3, gamma=0.5)
    assert [lr_multiplier(e * 4, 4, c) for e in (0, 2, 3, 6, 9)] == [1, 1, 0.5, 0.25, 0.125]
    one = schedule(scheduler="onecycle")
    values = [lr_multiplier(s, 10, one) for s in range(100)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1, abs=1e-3)
    assert values.index(max(values)) == 30 and values[-1] < 1e-3
