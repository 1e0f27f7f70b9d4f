"""Issue 14 on one GPU: ``cnnkit train`` fed by the streaming path (``data.cache: stream``,
JPEG files decoded in DataLoader workers) against the same recipe on synthetic data kept on
the GPU, and ``train.compile: true`` against eager, in one run.

Runs, each a ``python -m cnnkit train`` subprocess of the same recipe (ResNet-50, bf16
autocast, channels_last, batch 256, SGD; ``data.val: 0``, ``data.test: 0``,
``data.normalize: false``, so every epoch trains on the same number of images and no
statistics pass or validation runs between epochs):

  synthetic   ``data.name: synthetic``: decoded float32 images on the GPU, batches by indexing
  stream      ``data.name: folder`` over generated 256x256 JPEGs, ``data.cache: stream``,
              ``data.workers: W`` (CPUs - 2), pinned memory, ``data.sample_augment:
              [random_resized_crop]`` to 224x224 in the workers, uint8 until the device
  compiled    ``synthetic`` with ``train.compile: true``

The first epoch of each run warms up (workers, cuDNN autotuning, compilation); the figure of
a run is its steady state: the images of epochs 2..E over their training seconds (the
harmonic mean of metrics.csv's ``images_per_s``, each epoch having the same images). Ratios:
stream / synthetic (goal >= 0.95) and compiled / synthetic. Writes ``gpu_streaming.json``
and ``gpu_streaming.md`` (a block for bench/RESULTS.md) under ``--out``.

    python bench/gpu_streaming.py --out $OUT                # on a GPU (bench/gpu_session_14.sh)
    python bench/gpu_streaming.py --device cpu --smoke --out /tmp/x   # minutes -> seconds

``--smoke`` keeps every step and only shrinks the sizes (a 3x32x32 four-class CNN written
next to the data, 40x40 JPEGs, batch 16): the same functions run the same commands, the
device string aside, so the GPU session cannot meet untested code.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("synthetic", "stream", "compiled")

SMOKE_RECIPE = """\
# bench/gpu_streaming.py --smoke: a small 3-channel CNN, so the smoke run takes seconds.
input: [3, 32, 32]
model:
  layers:
    - {conv: {out: 8, k: 3, p: 1, bias: false}}
    - bn
    - relu
    - maxpool: 2
    - {conv: {out: 16, k: 3, p: 1}}
    - relu
    - global_avgpool
    - {linear: 4}
"""


@dataclass(frozen=True)
class Plan:
    """The sizes of one bench run; ``smoke`` shrinks them and nothing else."""

    recipe: str = "resnet50"
    classes: int = 1000
    side: int = 256  # stored JPEG side; random_resized_crop outputs the recipe input
    batch: int = 256
    steps: int = 100  # per epoch
    epochs: int = 4  # epoch 1 warms up; 2..epochs are measured
    workers: int = 0  # 0: CPUs - 2
    amp: str = "bf16"
    timeout: int = 240  # seconds per cnnkit train run

    @property
    def images(self) -> int:
        return self.batch * self.steps


SMOKE = Plan(recipe="", classes=4, side=40, batch=16, steps=4, epochs=3, workers=2, timeout=120)


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _picture(job: tuple[int, int, int, int]) -> None:
    """One seeded JPEG: a smooth random colour field (an upscaled 6x6 grid) plus pixel noise,
    so its size and decode cost are a photo's (~25 KB at 256x256), not random noise's."""
    import numpy as np
    from PIL import Image

    index, side, classes, seed = job
    rng = np.random.default_rng([seed, index])
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    field = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = field + rng.integers(-12, 13, field.shape, dtype=np.int16)
    path = Path(os.environ["GPU_STREAMING_ROOT"]) / f"c{index % classes:04d}" / f"{index:06d}.jpg"
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def generate(root: Path, plan: Plan, seed: int = 0) -> dict[str, float]:
    """``plan.images`` JPEGs in ``plan.classes`` class folders, made by a process pool;
    kept and reused when ``root/done.json`` says they match ``plan``."""
    stamp = {"images": plan.images, "side": plan.side, "classes": plan.classes, "seed": seed}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()) == stamp:
        return {"seconds": 0.0, "reused": True, "bytes": _size(root)}
    started = time.perf_counter()
    for c in range(plan.classes):
        (root / f"c{c:04d}").mkdir(parents=True, exist_ok=True)
    os.environ["GPU_STREAMING_ROOT"] = str(root)
    jobs = [(i, plan.side, plan.classes, seed) for i in range(plan.images)]
    with ProcessPoolExecutor(max_workers=cpus()) as pool:
        list(pool.map(_picture, jobs, chunksize=64))
    done.write_text(json.dumps(stamp))
    return {"seconds": time.perf_counter() - started, "reused": False, "bytes": _size(root)}


def _size(root: Path) -> int:
    return sum(f.stat().st_size for f in root.glob("c*/*.jpg"))


def decode_cost(root: Path, plan: Plan, side: int, workers: int) -> dict[str, float]:
    """What the workers can deliver: cnnkit's own decode (``stream.decode``, with the run's
    random_resized_crop) of up to 200 files in this process, the ceiling ``workers`` such
    processes give, and the refill at each epoch's start (one worker decodes a whole batch
    before the first step can run: the pipeline does not cross epoch boundaries)."""
    import torch

    from cnnkit.train.data.sources import Want
    from cnnkit.train.data.stream import decode

    files = sorted(root.glob("c*/*.jpg"))[:200]
    want = Want(3, (side, side))
    steps = (("random_resized_crop", {"scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3]}),)
    g = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for file in files:
        decode(str(file), want, steps, g)
    each = (time.perf_counter() - started) / len(files)
    return {"ms_per_image": each * 1e3, "workers_ceiling_images_per_s": workers / each,
            "epoch_refill_s": plan.batch * each}  # fmt: skip


def settings(plan: Plan, device: str, run: str, data: Path, workers: int) -> list[str]:
    """The ``--set`` values of one run: everything but the data source is shared."""
    common = [
        f"train.device={device}", f"train.batch_size={plan.batch}", f"train.epochs={plan.epochs}",
        f"train.amp={plan.amp}", "train.channels_last=true", "train.lr=0.01",
        "train.monitor=train_loss", "data.val=0", "data.test=0", "data.normalize=false",
        f"train.compile={'true' if run == 'compiled' else 'false'}",
    ]  # fmt: skip
    if run == "stream":
        source = [
            "data.name=folder", f"data.path={data}", "data.cache=stream",
            f"data.workers={workers}", "data.sample_augment=[random_resized_crop]",
        ]  # fmt: skip
    else:
        source = ["data.name=synthetic", f"data.samples={plan.images}",
                  f"data.classes={plan.classes}"]  # fmt: skip
    return common + source


def command(recipe: str, out: Path, sets: list[str]) -> list[str]:
    args = [sys.executable, "-m", "cnnkit", "train", recipe, "--out", str(out), "--json"]
    for s in sets:
        args += ["--set", s]
    return args


def steady(rates: list[float]) -> float:
    """Images/s over epochs 2..E: each epoch trains the same images, so total images over
    total seconds is the harmonic mean of the epochs' rates."""
    measured = rates[1:]
    return len(measured) / sum(1 / r for r in measured)


def train(args: list[str], out: Path, timeout: int) -> dict[str, object]:
    """Run one ``cnnkit train``; its epochs' images/s from metrics.csv and its steady state."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.perf_counter()
    try:
        done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "wall_s": time.perf_counter() - started}
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-1500:] or f"exit {done.returncode}", "wall_s": wall}
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rates = [float(r["images_per_s"]) for r in rows]
    summary = json.loads(done.stdout)
    return {
        "epochs_images_per_s": rates,
        "epochs_time_s": [float(r["time_s"]) for r in rows],
        "images_per_s": steady(rates),
        "wall_s": wall,
        "data_cache": summary.get("data", {}).get("cache"),
    }


def ratios(runs: dict[str, dict[str, object]]) -> dict[str, float | None]:
    """stream / synthetic and compiled / synthetic, from the measured steady states."""
    base = runs["synthetic"].get("images_per_s")

    def over(name: str) -> float | None:
        value = runs[name].get("images_per_s")
        return value / base if isinstance(value, float) and isinstance(base, float) else None

    return {"stream_over_synthetic": over("stream"), "compiled_over_synthetic": over("compiled")}


def machine(device: str) -> dict[str, object]:
    import platform

    import torch

    card = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    return {"device": device, "card": card or platform.machine(), "torch": torch.__version__,
            "python": platform.python_version(), "cpus": cpus()}  # fmt: skip


def markdown(document: dict[str, object]) -> str:
    """The block for bench/RESULTS.md: machine, command, one row per run, the ratios."""
    m, plan, runs, r = (document[k] for k in ("machine", "plan", "runs", "ratios"))
    lines = [
        f"`{document['command']}` on {m['card']} ({m['cpus']} CPUs), torch {m['torch']}, "
        f"Python {m['python']}; {plan['recipe'] or 'smoke CNN'}, batch {plan['batch']}, "
        f"{plan['steps']} steps x {plan['epochs']} epochs (epoch 1 warms up), amp "
        f"{plan['amp']}, channels_last, {document['workers']} stream workers; "
        f"{plan['images']:,} JPEGs at {plan['side']}x{plan['side']} "
        f"({document['images']['bytes'] / plan['images'] / 1024:.1f} KB each).",
        "",
        "| run | epochs' images/s | steady images/s (epochs 2..E) | ratio | wall s |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    names = {"synthetic": "synthetic data on the GPU (eager)", "compiled":
             "synthetic data on the GPU, `train.compile: true`",
             "stream": "`data.cache: stream` from JPEG files"}  # fmt: skip
    for name in RUNS:
        run = runs[name]
        if "error" in run:
            lines.append(f"| {names[name]} | failed: {run['error'].splitlines()[-1][:120]} | | | |")
            continue
        ratio = {"synthetic": 1.0, "stream": r["stream_over_synthetic"],
                 "compiled": r["compiled_over_synthetic"]}[name]  # fmt: skip
        epochs = ", ".join(f"{v:,.0f}" for v in run["epochs_images_per_s"])
        lines.append(f"| {names[name]} | {epochs} | {run['images_per_s']:,.0f} | "
                     f"{ratio:.3f} | {run['wall_s']:.0f} |")  # fmt: skip
    goal = r["stream_over_synthetic"]
    verdict = "not measured" if goal is None else ("met" if goal >= 0.95 else "NOT met")
    lines += ["", f"Goal stream >= 0.95x synthetic: {verdict}."]
    return "\n".join(lines) + "\n"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU test)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/cnnkit-gpu-streaming"))
    parser.add_argument("--data", type=Path, default=None, help="JPEG folder (default OUT/jpeg)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="default CPUs - 2")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per train run")
    parser.add_argument("--runs", default=",".join(RUNS), help="a subset of " + ",".join(RUNS))
    return parser.parse_args()


def main() -> None:
    args = parse()
    plan = SMOKE if args.smoke else Plan()
    given = {"steps": args.steps, "epochs": args.epochs, "timeout": args.timeout}
    plan = replace(plan, **{k: v for k, v in given.items() if v is not None})
    workers = args.workers or plan.workers or max(1, cpus() - 2)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or args.out / "jpeg"
    recipe = plan.recipe
    if not recipe:
        recipe = str(args.out / "smoke.yaml")
        Path(recipe).write_text(SMOKE_RECIPE)
    document: dict[str, object] = {
        "command": shlex.join(["python", "bench/gpu_streaming.py", *sys.argv[1:]]),
        "machine": machine(args.device), "plan": {**asdict(plan), "images": plan.images},
        "workers": workers, "images": generate(data, plan), "runs": {}, "commands": {},
    }  # fmt: skip
    side = int(json.loads(subprocess.run(
        [sys.executable, "-m", "cnnkit", "params", recipe, "--json"], capture_output=True,
        text=True, check=True, cwd=ROOT).stdout)["input"][-1])  # fmt: skip
    document["decode"] = decode_cost(data, plan, side, workers)
    print(f"images: {document['images']}; decode: {document['decode']}", flush=True)
    chosen = args.runs.split(",")
    for name in RUNS:
        out = args.out / f"run-{name}"
        sets = settings(plan, args.device, name, data, workers)
        document["commands"][name] = shlex.join(command(recipe, out, sets)[1:])
        skipped = {"error": "not run (--runs)"}
        document["runs"][name] = train(command(recipe, out, sets), out, plan.timeout) \
            if name in chosen else skipped  # fmt: skip
        print(name, json.dumps(document["runs"][name]), flush=True)
    document["ratios"] = ratios(document["runs"])
    (args.out / "gpu_streaming.json").write_text(json.dumps(document, indent=2))
    block = markdown(document)
    (args.out / "gpu_streaming.md").write_text(block)
    print(block)


if __name__ == "__main__":
    main()
