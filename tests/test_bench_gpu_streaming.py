"""bench/gpu_streaming.py is not dead code: its ``--device cpu --smoke`` mode runs the same
functions and commands the GPU session runs (sizes aside), and its figures come from the
runs' own metrics.csv, not from constants."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_streaming.py"


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_streaming", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_compiled_run_differs_from_synthetic_only_in_train_compile(tmp_path: Path) -> None:
    bench = _bench()
    plan = bench.Plan()
    eager = bench.settings(plan, "cuda", "synthetic", tmp_path, 14)
    compiled = bench.settings(plan, "cuda", "compiled", tmp_path, 14)
    assert set(compiled) - set(eager) == {"train.compile=true"}
    assert set(eager) - set(compiled) == {"train.compile=false"}
    stream = bench.settings(plan, "cuda", "stream", tmp_path, 14)
    assert {"data.cache=stream", "data.workers=14", "train.amp=bf16"} <= set(stream)


def test_smoke_run_measures_and_divides_its_own_numbers(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--out", str(out),
         "--runs", "synthetic,stream"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "gpu_streaming.json").read_text())
    assert len(list((out / "jpeg").glob("c*/*.jpg"))) == doc["plan"]["images"] == 64
    measured = {}
    for name, cache in (("synthetic", "memory"), ("stream", "stream")):
        run = doc["runs"][name]
        assert run["data_cache"] == cache
        with open(out / f"run-{name}" / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == doc["plan"]["epochs"] == 3
        # Oracle: total images over total seconds of epochs 2..E, from the epoch rows.
        seconds = sum(1 / float(r["images_per_s"]) for r in rows[1:])
        images = len(rows) - 1
        measured[name] = images / seconds
        assert abs(run["images_per_s"] - measured[name]) <= 1e-9 * measured[name]
    ratio = doc["ratios"]["stream_over_synthetic"]
    assert abs(ratio - measured["stream"] / measured["synthetic"]) <= 1e-12
    assert doc["ratios"]["compiled_over_synthetic"] is None  # not run: no number made up
    assert doc["decode"]["ms_per_image"] > 0
    block = (out / "gpu_streaming.md").read_text()
    assert f"{ratio:.3f}" in block and "failed: not run" in block
    assert "--set data.cache=stream" in doc["commands"]["stream"]
