"""cnnkit's mixup/cutmix against timm's ``Mixup`` (batch mode) itself.

cnnkit draws from its own per-epoch generator; here each of its draws is recorded and fed to
timm by standing in for ``np.random`` while timm mixes the same batch, so both must make the
same decisions from the same numbers: the mixed images must be equal element for element
and the soft targets equal. The fake also checks that cnnkit draws in timm's order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cnnkit.train.config import TrainConfig
from cnnkit.train.mixing import draw, mix


class Recorder:
    """cnnkit's generator, every draw written down."""

    def __init__(self, seed: int) -> None:
        self.rng, self.calls = np.random.default_rng(seed), []

    def random(self) -> float:
        self.calls.append(("rand", None, v := self.rng.random()))
        return v

    def beta(self, a: float, b: float) -> float:
        self.calls.append(("beta", (a, b), v := self.rng.beta(a, b)))
        return v

    def integers(self, low: int, high: int) -> int:
        self.calls.append(("randint", (low, high), v := int(self.rng.integers(low, high))))
        return v


class Replay:
    """``np.random`` for timm: the recorded draws, in order, with their arguments checked."""

    def __init__(self, calls: list) -> None:
        self.calls = list(calls)

    def _next(self, kind: str, args: tuple | None):
        got_kind, got_args, value = self.calls.pop(0)
        assert (got_kind, got_args) == (kind, args)
        return value

    def rand(self) -> float:
        return self._next("rand", None)

    def beta(self, a: float, b: float) -> float:
        return self._next("beta", (a, b))

    def randint(self, low: int, high: int, size=None) -> int:
        assert size is None
        return self._next("randint", (low, high))


SETTINGS = [
    {"mixup": 0.8},
    {"cutmix": 1.0},
    {"mixup": 0.8, "cutmix": 1.0},
    {"mixup": 0.2, "cutmix": 0.5, "mix_prob": 0.6, "mix_switch_prob": 0.3},
    {"cutmix": 2.0, "label_smoothing": 0.0},
]


@pytest.mark.parametrize(
    "setting", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_mixed_images_and_soft_targets_equal_timms(timm, monkeypatch, setting):
    from timm.data.mixup import Mixup

    c = dataclasses.replace(TrainConfig(), **{"label_smoothing": 0.1, **setting})
    classes, kinds = 7, set()
    for batch in range(40):
        gen = torch.Generator().manual_seed(batch)
        x = torch.randn(8, 3, 13, 20, generator=gen)  # not square: rows and columns differ
        y = torch.randint(0, classes, (8,), generator=gen)
        rec = Recorder(batch)
        d = draw(c, rec, 13, 20)
        mine_x, mine_t, _ = mix(x, y, d, classes, c.label_smoothing)
        kinds.add("cut" if d.box else ("mix" if d.lam != 1.0 else "none"))
        oracle = Mixup(
            mixup_alpha=c.mixup,
            cutmix_alpha=c.cutmix,
            prob=c.mix_prob,
            switch_prob=c.mix_switch_prob,
            mode="batch",
            correct_lam=True,
            label_smoothing=c.label_smoothing,
            num_classes=classes,
        )
        replay = Replay(rec.calls)
        monkeypatch.setattr(np, "random", replay)
        timm_x, timm_t = oracle(x.clone(), y.clone())
        monkeypatch.undo()
        assert replay.calls == []  # timm drew exactly what cnnkit drew
        assert torch.equal(mine_x, timm_x)
        assert torch.allclose(mine_t, timm_t, rtol=0, atol=1e-7)
    expected = {"cut"} if c.mixup == 0 else ({"mix"} if c.cutmix == 0 else {"mix", "cut"})
    assert expected <= kinds  # every branch was exercised
