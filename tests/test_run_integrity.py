"""Run-folder integrity: one writer per folder, checksummed checkpoints, no silent overwrites."""

from __future__ import annotations

import json
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

from cnnkit.errors import CheckpointError
from cnnkit.train import runs
from cnnkit.train.checkpoint import load_checkpoint
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


# --- the run folder after --overwrite, kills and resumes (issue 11, items 2-5) -----------------


def _files(run: Path) -> dict[str, bytes]:
    """Every file in the folder, hidden ones included, by relative path."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _grad_rows(run: Path) -> list[list[str]]:
    return [line.split(",") for line in (run / "grad_stats.csv").read_text().splitlines()[1:]]


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _train(recipe: Path, run: Path, *extra: str) -> None:
    r = run_cli("train", str(recipe), "--out", str(run), "--json", *extra)
    assert r.code == 0, r.err


def test_overwrite_starts_grad_stats_afresh(tmp_path):
    """The old run's grad_stats.csv was appended to: epoch 1 twice, from two recipes."""
    old = tiny_recipe(tmp_path, ONE_EPOCH)
    new = tiny_recipe(tmp_path, ONE_EPOCH.replace("lr: 0.05", "lr: 0.01"), "new.yaml")
    run, alone = tmp_path / "run", tmp_path / "alone"
    _train(old, run, "--grad-stats")
    _train(new, run, "--grad-stats", "--overwrite")
    _train(new, alone, "--grad-stats")
    assert (run / "grad_stats.csv").read_text() == (alone / "grad_stats.csv").read_text()
    assert {row[0] for row in _grad_rows(run)} == {"1"}
    assert _same_weights(run / "last.pt", alone / "last.pt")
    assert sorted(_files(run)) == sorted(_files(alone))  # nothing of the old run is left


def test_overwrite_that_diverges_before_its_first_checkpoint_keeps_the_old_run(tmp_path):
    """Before: a "diverged" summary over the old run's checkpoints, and --resume continued
    the old run. Now the new run never got a checkpoint, so the old run is put back whole."""
    run = _trained(tmp_path)
    before = _files(run)
    recipe = tiny_recipe(tmp_path, ONE_EPOCH.replace("lr: 0.05", "lr: 1e6"), "bad.yaml")
    r = run_cli("train", str(recipe), "--out", str(run), "--overwrite")
    assert r.code == 1
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("error: loss became") and f"{run} holds the previous run again" in last
    assert _files(run) == before  # byte for byte, no hidden leftovers


def test_a_run_that_diverges_after_replacing_another_reports_its_own_checkpoint(tmp_path):
    """The new run committed with its first last.pt: its summary says epoch 1 of the new run,
    and the old run (3 epochs) is gone entirely."""
    from cnnkit.train.experiment import train_run
    from cnnkit.train.loop import Diverged, Silent
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    run = tmp_path / "run"
    _train(tiny_recipe(tmp_path), run, "--grad-stats")  # the old run: 3 epochs
    plan = plan_from_recipe(load_with_overrides(tiny_recipe(tmp_path, name="b.yaml")), "new")
    model = _TurnsNaN()
    plan.build = lambda: model

    class PoisonSecondEpoch(Silent):
        def epoch_start(self, epoch, epochs, steps):
            model.poison = epoch >= 1

    with pytest.raises(Diverged, match="epoch 2"):
        train_run(plan, out=run, overwrite=True, reporter=PoisonSecondEpoch())
    document = json.loads((run / "summary.json").read_text())
    assert document["status"] == "diverged" and document["epochs"] == 1
    assert load_checkpoint(run / "last.pt")["recipe"] == plan.recipe_text
    assert load_checkpoint(run / "best.pt")["recipe"] == plan.recipe_text
    assert len((run / "metrics.csv").read_text().splitlines()) == 2
    assert not (run / "grad_stats.csv").exists() and not (run / runs.REPLACED).exists()


class _TurnsNaN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(72, 10)
        self.poison = False

    def forward(self, x):
        out = self.fc(self.conv(x).flatten(1))
        return out * float("nan") if self.poison else out


def test_a_kill_in_the_middle_of_an_overwrite_is_settled_at_the_next_start(tmp_path):
    """SIGKILL can land while the old files are moved aside, while the new run has no
    checkpoint yet, or after its first last.pt but before the old run is deleted."""
    old = _trained(tmp_path)
    before = _files(old)
    # killed while moving the old files aside: two of them already in .replacing/
    (old / runs.REPLACING).mkdir()
    for name in (runs.LAST, runs.METRICS):
        os.replace(old / name, old / runs.REPLACING / name)
    r = run_cli("train", "--resume", str(old), "--json")
    assert r.code == 0, r.err
    assert _files(old) == before
    # killed in the new run's first epoch: its recipe.yaml and a temporary file only
    runs.set_aside(old)
    (old / runs.RECIPE).write_text("# the new run's recipe\n")
    (old / ".best.pt.123.tmp").write_bytes(b"half a checkpoint")
    r = run_cli("train", "--resume", str(old), "--json")
    assert r.code == 0, r.err
    assert _files(old) == before
    # killed after the new run's first last.pt: the new run stays, the old one goes
    new = tmp_path / "new"
    _train(tiny_recipe(tmp_path, ONE_EPOCH.replace("lr: 0.05", "lr: 0.01"), "n.yaml"), new)
    runs.set_aside(old)
    for name, data in _files(new).items():
        (old / name).write_bytes(data)
    assert run_cli("train", "--resume", str(old), "--json").code == 0
    assert _files(old) == _files(new)


def test_resume_rewrites_the_metrics_row_a_kill_lost(tmp_path):
    """Killed between the final last.pt and metrics.csv: the row was lost for good while the
    resumed run said "completed". The checkpoint's history is the source of truth."""
    run = _trained(tmp_path)
    rows = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(rows.splitlines()[0] + "\n")  # as metrics.csv was before
    (run / "summary.json").unlink()  # the kill came before it too
    r = run_cli("train", "--resume", str(run), "--json")
    assert r.code == 0, r.err
    assert (run / "metrics.csv").read_text() == rows
    assert json.loads(r.out)["status"] == "completed" and (run / "summary.json").exists()


def test_resume_drops_the_grad_stats_rows_of_the_epoch_it_trains_again(tmp_path):
    """grad_stats.csv rows are written before the epoch's last.pt: a kill in between left
    that epoch's rows, and the resumed run wrote them a second time."""
    from cnnkit.train.experiment import train_run
    from cnnkit.train.loop import Silent
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    recipe = tiny_recipe(tmp_path)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(recipe, whole, "--grad-stats")

    class StopBeforeEpoch3(Silent):
        def epoch_start(self, epoch, epochs, steps):
            if epoch == 2:
                raise KeyboardInterrupt

    plan = plan_from_recipe(load_with_overrides(recipe), f"resolved by cnnkit train from {recipe}")
    with pytest.raises(KeyboardInterrupt):
        train_run(plan, out=cut, grad_stats=True, reporter=StopBeforeEpoch3())
    assert load_checkpoint(cut / "last.pt")["epoch"] == 2
    killed_epoch = "".join(  # epoch 3's rows, as the killed process wrote them, the last cut
        line.replace("2,", "3,", 1) + "\n" for line in _grad_rows_text(cut) if line[:2] == "2,"
    )
    with open(cut / "grad_stats.csv", "a") as handle:
        handle.write(killed_epoch[:-4])
    r = run_cli("train", "--resume", str(cut), "--json", "--grad-stats")
    assert r.code == 0, r.err
    assert (cut / "grad_stats.csv").read_text() == (whole / "grad_stats.csv").read_text()


def _grad_rows_text(run: Path) -> list[str]:
    return (run / "grad_stats.csv").read_text().splitlines()[1:]


def test_resuming_an_early_stopped_run_trains_no_further_epoch(tmp_path):
    """Before, --resume of an early-stopped run trained one more epoch (other weights)."""
    run = tmp_path / "run"
    sets = ["train.lr=1e-12", "train.early_stop=2", "train.epochs=10"]
    _train(tiny_recipe(tmp_path), run, *[a for s in sets for a in ("--set", s)])
    before = _files(run)
    assert json.loads(before["summary.json"])["status"] == "early_stopped"
    r = run_cli("train", "--resume", str(run))
    assert r.code == 0, r.err
    assert _files(run) == before
    assert "already early_stopped after 3 epochs" in r.out


def test_a_run_stopped_between_best_and_last_is_restarted_by_the_command_the_refusal_names(
    tmp_path,
):
    """best.pt but no last.pt: the rerun refused and advised --resume, which refused too."""
    recipe = tiny_recipe(tmp_path, ONE_EPOCH)
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    _train(recipe, fresh)
    _train(recipe, run)
    for name in (runs.LAST, runs.METRICS, runs.SUMMARY):  # as a kill after best.pt leaves it
        (run / name).unlink()
    r = run_cli("train", str(recipe), "--out", str(run))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert f"start it again with --resume {run}" in r.err
    r = run_cli("train", "--resume", str(run), "--json")
    assert r.code == 0, r.err
    assert _same_weights(run / "last.pt", fresh / "last.pt")
    assert _same_weights(run / "best.pt", fresh / "best.pt")
    assert (run / "recipe.yaml").read_text() == (fresh / "recipe.yaml").read_text()
    assert json.loads(r.out)["name"] == "tiny"


def test_a_folder_a_run_was_killed_in_before_writing_anything_names_what_works(tmp_path):
    recipe, run = tiny_recipe(tmp_path, ONE_EPOCH), tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("12345\n")  # killed right after creating the folder
    r = run_cli("train", "--resume", str(run))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert f"train into it with cnnkit train RECIPE --out {run}" in r.err
    _train(recipe, run)  # that command works


def test_summary_json_is_strict_json(tmp_path):
    """A NaN (a diverged metric) was written as the bare token NaN, which is not JSON."""

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    runs.write_summary(tmp_path, {"val_loss": float("nan"), "best": {"value": float("inf")}})
    document = json.loads((tmp_path / "summary.json").read_text(), parse_constant=refuse)
    assert document == {"val_loss": None, "best": {"value": None}}


def test_the_run_folder_lock_is_reentrant_in_one_process(tmp_path):
    with runs.locked(tmp_path), runs.locked(tmp_path):
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()
