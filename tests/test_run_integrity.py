"""Run-folder integrity: one writer per folder, checksummed checkpoints, no silent overwrites."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from cnnkit import runs
from cnnkit.errors import CheckpointError
from cnnkit.nn.checkpoint import load_checkpoint
from tests.clitools import run_cli
from tests.trainkit import TINY_TRAIN, tiny_recipe

ONE_EPOCH = TINY_TRAIN.replace("epochs: 3", "epochs: 1")
ENDLESS = TINY_TRAIN.replace("epochs: 3", "epochs: 100000")


def _trained(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    r = run_cli("train", str(tiny_recipe(tmp_path, ONE_EPOCH)), "--out", str(run))
    assert r.code == 0, r.err
    return run


def _data_offset(path: Path) -> tuple[int, int]:
    """Where the largest tensor's bytes start in the checkpoint zip, and how many there are
    (read from the zip's own local header, so the flip lands in tensor data, not metadata)."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_a_flipped_byte_in_tensor_data_is_a_checksum_error(tmp_path):
    run = _trained(tmp_path)
    best = run / "best.pt"
    before = torch.load(best, weights_only=True)["model"]
    start, size = _data_offset(best)
    raw = bytearray(best.read_bytes())
    raw[start + size // 2] ^= 0x40
    best.write_bytes(bytes(raw))
    after = torch.load(best, weights_only=True)["model"]  # torch itself notices nothing
    assert any(not torch.equal(before[k], after[k]) for k in before)

    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(best)
    r = run_cli("eval", str(best))
    assert r.code == 2 and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and str(best) in lines[0] and "checksum mismatch" in lines[0]


def test_a_checkpoint_without_checksum_still_loads(tmp_path):
    run = _trained(tmp_path)
    old = torch.load(run / "best.pt", weights_only=True)
    del old["checksum"]  # as cnnkit wrote them before checksums
    torch.save(old, run / "best.pt")
    assert torch.equal(
        load_checkpoint(run / "best.pt")["model"]["fc.weight"], old["model"]["fc.weight"]
    )
    assert run_cli("eval", str(run)).code == 0


def test_resume_refuses_a_hand_edited_recipe(tmp_path):
    run = _trained(tmp_path)
    edited = (run / "recipe.yaml").read_text() + "# lr changed by hand\n"
    (run / "recipe.yaml").write_text(edited)
    r = run_cli("train", "--resume", str(run))
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert (
        len(lines) == 1
        and "recipe.yaml" in lines[0]
        and "changed since the run started" in lines[0]
    )
    assert (run / "recipe.yaml").read_text() == edited  # the edit is not lost


@pytest.mark.parametrize("option", ["--out", "--resume"])
def test_an_empty_folder_name_is_bad_input(tmp_path, option, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe(tmp_path)
    args = ["train", str(recipe), "--out", ""] if option == "--out" else ["train", "--resume", ""]
    r = run_cli(*args)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and option in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # nothing written to .


def _cnnkit(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cnnkit", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _refused(process: subprocess.Popen, pid: int, run: Path) -> None:
    _, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 2, err
    assert len(lines) == 1 and f"{run} is being written by another cnnkit run (pid {pid})" in err


def test_a_second_run_on_a_folder_being_written_is_refused(tmp_path):
    recipe = tiny_recipe(tmp_path, ENDLESS)
    run = tmp_path / "run"
    first = _cnnkit("train", str(recipe), "--out", str(run))
    try:
        deadline = time.monotonic() + 90
        while not (run / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (run / "last.pt").exists(), "the first run never wrote a checkpoint"
        recipe_before = (run / "recipe.yaml").read_text()
        other = tiny_recipe(tmp_path, ENDLESS.replace("lr: 0.05", "lr: 0.01"), "other.yaml")
        _refused(_cnnkit("train", str(other), "--out", str(run), "--overwrite"), first.pid, run)
        _refused(_cnnkit("train", "--resume", str(run)), first.pid, run)
        assert (run / "recipe.yaml").read_text() == recipe_before
        assert first.poll() is None, "the first run must still be going"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    with runs.locked(run):  # SIGKILL left .lock behind, but the OS released the lock itself
        assert (run / ".lock").read_text().strip() == str(os.getpid())
    assert not (run / ".lock").exists()
