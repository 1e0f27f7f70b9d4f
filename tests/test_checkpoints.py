"""Checkpoints: atomic replacement, weights_only loading, clear errors for bad files."""

from __future__ import annotations

import os

import pytest
import torch

from cnnkit import atomic
from cnnkit.errors import CheckpointError
from cnnkit.nn import checkpoint
from cnnkit.nn.checkpoint import load_checkpoint, save_atomic
from tests.clitools import run_cli

GOOD = {
    "model": {"w": torch.ones(3)},
    "recipe": "x",
    "epoch": 1,
    "task": "classify",
    "classes": ["a"],
    "mean": [0.0],
    "std": [1.0],
}


def test_a_failing_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic(GOOD, path)
    before = path.read_bytes()

    def half_write(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", half_write)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({**GOOD, "epoch": 2}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_save_goes_through_a_temp_file_and_os_replace(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (seen.append((a, b)), real(a, b)))
    save_atomic(GOOD, tmp_path / "best.pt")
    ((src, dst),) = seen
    assert dst == tmp_path / "best.pt" and src.parent == tmp_path and src.name.endswith(".tmp")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00garbage" * 10, "corrupt or truncated"),
        (b"epoch,lr\n1,0.1\n", "corrupt or truncated"),  # a CSV given as a checkpoint
        ("truncated", "corrupt or truncated"),
        ({"w": torch.ones(2)}, "not a cnnkit checkpoint"),
        ("code", "refused: holds code or foreign objects"),
    ],
)
def test_bad_checkpoints_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content == "truncated":
        save_atomic(GOOD, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "code":
        torch.save({"format": "cnnkit-checkpoint", "f": os.getcwd, "x": Exotic()}, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    r = run_cli("eval", str(path))
    assert r.code == 2 and r.err.startswith(f"error: {path}: ") and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


class Exotic:
    """A class weights_only loading must refuse to instantiate."""
