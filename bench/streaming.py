"""Streaming data (``data.cache: stream``): peak memory at 10k vs 100k images, and images/s
against a hand-written ImageFolder-style ``Dataset`` + ``DataLoader``.

One run does both. ``--unique`` distinct 32x32 RGB PNGs are generated once into ``--root``
(kept for later runs); the 10k and 100k sets are CSVs of ``path,label`` rows that name those
files, repeated as often as needed (the 100k set repeats each file 100000/unique times:
streaming's memory depends on the number of entries, not on the files being distinct, and
generating 100k files would dominate the run).

Peak RSS: each size runs in a fresh child process (``--child``), which loads the data with
``data.cache: stream`` (file listing, header checks, split) and iterates one training epoch
of batches with 2 workers; it reports its own peak RSS and its workers' (``RUSAGE_CHILDREN``,
read after the loader's workers have exited). Goal: 100k within 1.2x of 10k.

Throughput: cnnkit's ``StreamSplit.batches`` (2 workers, batch 64, the epoch's permutation)
against the hand loop (same files, same PIL decode and resize, same uint8 -> float /255 and
normalisation in the main process, ``DataLoader(num_workers=2, persistent_workers=True)`` with
a seeded ``RandomSampler``), alternating A-B for ``--repeats`` rounds after one warm-up epoch
each; the medians are compared. Goal: >= 0.95x.

    python bench/streaming.py [--root /tmp/cnnkit-stream-bench] [--unique 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SIZE = 32
BATCH = 64
WORKERS = 2


def generate(root: Path, unique: int) -> None:
    """``unique`` PNGs in 10 class folders (random pixels, so PNG cannot compress them away)."""
    from PIL import Image

    if len(list(root.glob("c*/*.png"))) >= unique:
        return
    rng = np.random.default_rng(0)
    for i in range(unique):
        folder = root / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            folder / f"{i:06d}.png"
        )


def table(root: Path, unique: int, count: int) -> Path:
    """A ``path,label`` CSV of ``count`` rows over the ``unique`` files (repeated in order)."""
    files = sorted(root.glob("c*/*.png"))[:unique]
    out = root / f"files_{count}.csv"
    if not out.exists():
        rows = [f"{files[i % unique].relative_to(root)},{files[i % unique].parent.name}"
                for i in range(count)]  # fmt: skip
        out.write_text("path,label\n" + "\n".join(rows) + "\n")
    return out


def stream_data(csv: Path, normalize: bool = False):
    from cnnkit.train.config import NoLocation, parse_data
    from cnnkit.train.data import load_data

    raw = {"name": "csv", "path": str(csv), "cache": "stream", "workers": WORKERS}
    config = parse_data({**raw, "val": 0.0, "test": 0.0, "normalize": normalize}, NoLocation())
    return load_data(config, (3, SIZE, SIZE))


def child(csv: Path) -> None:
    """Load and iterate one epoch with streaming; print peak RSS (MiB) of this process and
    of its (exited) worker processes."""
    started = time.perf_counter()
    data = stream_data(csv)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    seen = sum(len(y) for _, y in data.train.batches(order, BATCH))
    loader = data.train._loader
    if loader is not None and loader._iterator is not None:
        loader._iterator._shutdown_workers()  # join the workers so RUSAGE_CHILDREN counts them
    main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"images": seen, "main_mib": main, "worker_mib": workers,
                      "seconds": time.perf_counter() - started}))  # fmt: skip


class HandFolder(torch.utils.data.Dataset):
    """What a person writes by hand (torchvision.datasets.ImageFolder's shape): a list of
    (path, label), PIL open + convert + resize per item, a uint8 CHW tensor."""

    def __init__(self, csv: Path) -> None:
        import csv as csvlib

        with open(csv, newline="") as handle:
            rows = list(csvlib.DictReader(handle))
        names = sorted({r["label"] for r in rows})
        self.items = [(str(csv.parent / r["path"]), names.index(r["label"])) for r in rows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as image:
            image = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()
        return torch.from_numpy(array), label


def hand_epoch(loader, mean: torch.Tensor, std: torch.Tensor) -> int:
    seen = 0
    for x, y in loader:
        x = (x.float() / 255.0 - mean) / std
        seen += len(y)
    return seen


def throughput(csv: Path, repeats: int) -> dict[str, float]:
    data = stream_data(csv, normalize=True)
    mean = torch.tensor(data.mean)[None, :, None, None]
    std = torch.tensor(data.std)[None, :, None, None]
    g = torch.Generator().manual_seed(0)
    dataset = HandFolder(csv)
    hand = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, sampler=torch.utils.data.RandomSampler(dataset, generator=g),
        num_workers=WORKERS, persistent_workers=True,
    )  # fmt: skip

    def ours(epoch: int) -> int:
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(epoch))
        return sum(len(y) for _, y in data.train.batches(order, BATCH))

    rates: dict[str, list[float]] = {"cnnkit": [], "hand": []}
    runs = {"cnnkit": lambda e: ours(e), "hand": lambda e: hand_epoch(hand, mean, std)}
    for epoch in range(repeats + 1):
        for name in ("cnnkit", "hand") if epoch % 2 == 0 else ("hand", "cnnkit"):
            started = time.perf_counter()
            seen = runs[name](epoch)
            if epoch:  # epoch 0 warms up both (worker start, page cache)
                rates[name].append(seen / (time.perf_counter() - started))
    out = {f"{k}_images_per_s": statistics.median(v) for k, v in rates.items()}
    out["ratio"] = out["cnnkit_images_per_s"] / out["hand_images_per_s"]
    out["rounds"] = {k: [round(r) for r in v] for k, v in rates.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/cnnkit-stream-bench"))
    parser.add_argument("--unique", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    generate(args.root, args.unique)
    result: dict[str, object] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for count in map(int, args.sizes.split(",")):
        csv = table(args.root, args.unique, count)
        done = subprocess.run([sys.executable, __file__, "--child", str(csv)], check=True,
                              capture_output=True, text=True)  # fmt: skip
        result[f"rss_{count}"] = json.loads(done.stdout.strip().splitlines()[-1])
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(sizes) == 2:
        a, b = (result[f"rss_{n}"] for n in sizes)
        result["rss_ratio_main"] = b["main_mib"] / a["main_mib"]
        result["rss_ratio_total"] = (b["main_mib"] + 2 * b["worker_mib"]) / (
            a["main_mib"] + 2 * a["worker_mib"]
        )
    result["throughput"] = throughput(table(args.root, args.unique, sizes[0]), args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
