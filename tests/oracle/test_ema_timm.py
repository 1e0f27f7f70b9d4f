"""cnnkit's ``train.ema`` against timm's ``ModelEmaV3`` itself (warm-up, batch-norm buffers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.train.ema import Ema


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_is_timms_model_ema_v3_updated_with_the_step_count(timm, warmup):
    from timm.utils.model_ema import ModelEmaV3

    model = _net()
    ours = Ema(model, 0.9, warmup=warmup)
    theirs = ModelEmaV3(model, decay=0.9, use_warmup=warmup)  # warmup_power 2/3, gamma 1
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(1)
    for step in range(1, 9):
        x, y = torch.randn(5, 3, 6, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        ours.update(model)
        theirs.update(model, step=step)  # as timm's train.py: the count after the step
    mine, timms = ours.module.state_dict(), theirs.module.state_dict()
    assert mine.keys() == timms.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], timms[key], rtol=1e-6, atol=1e-7, msg=key)
    assert not torch.allclose(mine["1.running_mean"], model.state_dict()["1.running_mean"])
