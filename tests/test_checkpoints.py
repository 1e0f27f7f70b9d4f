"""Checkpoints: atomic replacement, weights_only loading, clear errors for bad files."""

from __future__ import annotations

import errno
import io
import os
import resource
import signal
from pathlib import Path

import pytest
import torch

from cnnkit import atomic
from cnnkit.errors import CheckpointError
from cnnkit.train import checkpoint
from cnnkit.train.checkpoint import load_checkpoint, save_atomic
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


# ---- a full disk: the OS's own ENOSPC / EFBIG, reported for the user's file ----

FULL = "/dev/full"  # Linux: every write fails with the kernel's ENOSPC, as on a full disk


class FillingDisk(io.RawIOBase):
    """The temporary file on a disk with ``room`` bytes free: writes past that go to
    /dev/full. Torch's zip writer then fails with "[enforce fail at inline_container.cc]"
    unless the OSError is kept, as the issue reports from a real full disk."""

    def __init__(self, path, room: int) -> None:
        self.file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.full = open(FULL, "wb", buffering=0)  # noqa: SIM115
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.room == 0:
            return self.full.write(data)
        n = min(len(data), self.room)
        self.room -= n
        return self.file.write(bytes(data[:n]))

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        self.full.close()
        super().close()


def _temporaries_onto_full_disk(monkeypatch, target: str = "", room: int = 4096) -> None:
    """``atomic_open``'s temporary file (``.NAME.PID.tmp``) for a target ending in ``target``
    lands on a disk with ``room`` bytes free."""
    real_open = open

    def onto_full_disk(file, mode="r", **kw):
        name = Path(file).name
        if not (name.endswith(".tmp") and name.rsplit(".", 2)[0].endswith(target)):
            return real_open(file, mode, **kw)
        return io.BufferedWriter(FillingDisk(file, room))

    monkeypatch.setattr(atomic, "open", onto_full_disk, raising=False)


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs Linux /dev/full")
@pytest.mark.parametrize("room", [0, 4096, 10_000])
def test_a_full_disk_is_no_space_left_on_the_users_file(tmp_path, monkeypatch, room):
    path = tmp_path / "last.pt"
    save_atomic(GOOD, path)
    before = path.read_bytes()
    _temporaries_onto_full_disk(monkeypatch, room=room)
    big = {**GOOD, "epoch": 2, "model": {"w": torch.ones(20_000)}}  # 80 KB: fills any room
    with pytest.raises(OSError) as caught:  # torch's own: "[enforce fail at inline_container.cc]"
        save_atomic(big, path)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.pt"]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
def test_a_file_size_limit_on_a_real_file_names_the_users_file(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG): a real file on a real
    disk, no fake. Only the soft limit is lowered, and it is restored at once."""
    path = tmp_path / "best.pt"
    big = {**GOOD, "model": {"w": torch.ones(20_000)}}  # 80 KB, over the 16 KB limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, hard))
        with pytest.raises(OSError) as caught:
            save_atomic(big, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert caught.value.errno == errno.EFBIG and caught.value.filename == str(path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.exists(FULL), reason="needs Linux /dev/full")
def test_train_on_a_full_disk_is_one_line_naming_the_checkpoint(tmp_path, monkeypatch):
    from tests.trainkit import tiny_recipe

    _temporaries_onto_full_disk(monkeypatch, target=".pt")  # the recipe file is written
    run = tmp_path / "run"
    # The end-to-end contract (one line, the user's path, no temporary); the unit tests above
    # reproduce torch's "[enforce fail]" itself.
    r = run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(run), "--set", "train.epochs=1")
    assert r.code == 2, r
    (error,) = [line for line in r.err.splitlines() if line.startswith("error")]  # after progress
    assert error.startswith(f"error: {run}{os.sep}"), r.err
    assert error.endswith(".pt: No space left on device"), r.err
    assert ".tmp" not in r.err and "enforce fail" not in r.err, r.err
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
