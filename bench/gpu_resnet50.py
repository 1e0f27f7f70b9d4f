"""ResNet-50 on one GPU, batch 256, bf16 autocast + channels_last: cnnkit against hand-written
PyTorch, in one process tree, on one card.

Rows (images/s; training step = forward + cross-entropy + backward + SGD-momentum step):
  hand loop, torchvision resnet50     the minimal loop a person writes (needs torchvision)
  hand loop, cnnkit-built resnet50    the same loop on the module cnnkit builds from the recipe
  timm-style loop, timm resnet50      timm's benchmark.py recipe: events around N steps
  cnnkit profile                      `cnnkit profile resnet50 --device cuda ...` (subprocess)
  cnnkit train                        `cnnkit train resnet50` on synthetic data kept on the GPU
                                      (subprocess; the second epoch's images/s from metrics.csv)
Every loop warms up first (cuDNN autotuning, allocator), uses random inputs on the GPU, and is
timed with CUDA events over blocks of steps; the median block is reported.

    python bench/gpu_resnet50.py [--batch 256] [--steps 20] [--out results.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed_blocks(step, steps: int, blocks: int = 3, warmup: int = 10) -> float:
    """Median seconds per step over ``blocks`` blocks of ``steps`` steps, CUDA-event timed."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    per_step = []
    for _ in range(blocks):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        per_step.append(start.elapsed_time(end) / 1000 / steps)
    return statistics.median(per_step)


def hand_loops(model: torch.nn.Module, batch: int, steps: int) -> dict[str, float]:
    """Images/s of a minimal training step and of inference, bf16 autocast, channels_last."""
    try:
        return _hand_loops(model, batch, steps)
    finally:
        torch.cuda.empty_cache()


def _hand_loops(model: torch.nn.Module, batch: int, steps: int) -> dict[str, float]:
    model = model.cuda().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer_step() -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(x)

    model.train()
    train = timed_blocks(train_step, steps)
    model.eval()
    infer = timed_blocks(infer_step, steps)
    return {"train": batch / train, "infer": batch / infer}


def run_cnnkit(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "cnnkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def cnnkit_profile(batch: int, steps: int, mode: str) -> float | None:
    done = run_cnnkit(
        ["profile", "resnet50", "--device", "cuda", "--batch", str(batch), "--mode", mode,
         "--dtype", "bf16", "--channels-last", "--warmup", "10", "--iters", str(steps), "--json"]
    )  # fmt: skip
    if done.returncode != 0:
        print("cnnkit profile failed:", done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout)["batches"][0]["images_per_s"]


def cnnkit_train(batch: int, steps: int) -> tuple[float | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        samples = batch * steps
        sets = [
            "data.name=synthetic", f"data.samples={int(samples / 0.7) + 1}", "data.classes=1000",
            "data.val=0.1", "data.test=0.2", f"train.batch_size={batch}", "train.epochs=2",
            "train.amp=bf16", "train.channels_last=true", "train.device=cuda", "train.lr=0.01",
        ]  # fmt: skip
        args = ["train", "resnet50", "--out", str(out)]
        for s in sets:
            args += ["--set", s]
        started = time.perf_counter()
        done = run_cnnkit(args)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print("cnnkit train failed:", done.stderr[-3000:], file=sys.stderr)
            return None, done.stderr[-500:]
        with open(out / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        rates = [float(r["images_per_s"]) for r in rows]
        return rates[-1], f"epochs' images/s {[round(r) for r in rates]}, wall {wall:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    torch.backends.cudnn.benchmark = True
    card = torch.cuda.get_device_name()
    print(f"card: {card}; torch {torch.__version__}; batch {args.batch}; bf16 + channels_last")
    results: dict[str, dict[str, float | None]] = {}
    notes: list[str] = []

    import cnnkit

    results["hand loop, cnnkit-built resnet50"] = hand_loops(
        cnnkit.build(cnnkit.load_recipe("resnet50")), args.batch, args.steps
    )
    torchvision = None
    try:
        import torchvision

        results["hand loop, torchvision resnet50"] = hand_loops(
            torchvision.models.resnet50(), args.batch, args.steps
        )
    except ImportError:
        notes.append("torchvision absent: no torchvision row")
    try:
        import timm

        results["timm-style loop, timm resnet50"] = hand_loops(
            timm.create_model("resnet50"), args.batch, args.steps
        )
    except ImportError:
        notes.append("timm absent: no timm row")
    results["cnnkit profile"] = {
        "train": cnnkit_profile(args.batch, args.steps, "train"),
        "infer": cnnkit_profile(args.batch, args.steps, "infer"),
    }
    # Fixed per-epoch costs (the first step after evaluation, the closing sync) weigh on a
    # short epoch: train for 3x the steps so the second epoch measures the steady state.
    rate, detail = cnnkit_train(args.batch, 3 * args.steps)
    results["cnnkit train"] = {"train": rate, "infer": None}
    notes.append(f"cnnkit train: {detail}")

    # A-B-A: the baseline loop again after the cnnkit rows, so a drift of the card's clocks
    # or temperature over the run favours neither side; ratios use the mean of the two.
    first = "hand loop, torchvision resnet50"
    if torchvision is not None:
        again = torchvision.models.resnet50()
    else:
        first = "hand loop, cnnkit-built resnet50"
        again = cnnkit.build(cnnkit.load_recipe("resnet50"))
    results[first + " (again)"] = hand_loops(again, args.batch, args.steps)
    base = {
        key: (results[first][key] + results[first + " (again)"][key]) / 2
        for key in ("train", "infer")
    }
    notes.append(f"ratios are against the mean of the two '{first}' rows")

    print(f"\n{'':36} {'train img/s':>12} {'ratio':>6} {'infer img/s':>12} {'ratio':>6}")
    for name, r in results.items():
        cells = []
        for key in ("train", "infer"):
            v = r.get(key)
            cells.append(f"{v:12,.0f} {v / base[key]:6.3f}" if v else f"{'-':>12} {'-':>6}")
        print(f"{name:36} {cells[0]} {cells[1]}")
    for note in notes:
        print("note:", note)
    document = {"card": card, "torch": torch.__version__, "batch": args.batch,
                "results": results, "baseline": first, "notes": notes}  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
