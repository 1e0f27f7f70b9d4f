"""Training-loop overhead: cnnkit's ``fit`` against a minimal hand-written PyTorch loop.

Both train the same model (built from the recipe, identical initial weights) on the same
tensors (the recipe's data, already on the device) with the same optimiser, batch size and
number of epochs; neither validates nor writes checkpoints. The two alternate for ``--repeats``
rounds in one process (ABBA order); the median wall times are compared, so both see the same
machine state. cnnkit's extra per-step work is what a real run pays: the LambdaLR step, the
on-device loss/accuracy sums and a host sync every 25 steps for the progress bar.

    python bench/train_overhead.py [recipes/lenet.yaml] [--epochs 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import torch
import torch.nn.functional as F

from cnnkit.train.data import load_data
from cnnkit.train.loop import fit
from cnnkit.train.plan import load_with_overrides, plan_from_recipe
from cnnkit.train.runtime import pick_device


def hand_loop(model, x, y, epochs, batch_size, lr, momentum, seed):
    """What a person writes by hand: shuffle, slice, forward, loss, backward, step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g).to(x.device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="recipes/lenet.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    plan = plan_from_recipe(load_with_overrides(args.recipe), "bench")
    train = dataclasses.replace(
        plan.train,
        epochs=args.epochs,
        device=args.device,
        scheduler="constant",
        warmup_epochs=0.0,
        weight_decay=0.0,
        nesterov=False,
        batch_size=args.batch_size or plan.train.batch_size,
    )
    data_config = dataclasses.replace(plan.data, val=0.0, test=0.0, augment=())
    data = load_data(data_config, plan.input_shape)
    device = pick_device(train.device)
    data = data.to(device)
    x, y = data.train.x, data.train.y
    images = len(y) * args.epochs

    def run_cnnkit() -> float:
        model = plan.build()
        sync(device)
        start = time.perf_counter()
        fit(model, data, train)
        sync(device)
        return time.perf_counter() - start

    def run_hand() -> float:
        model = plan.build().to(device)
        sync(device)
        start = time.perf_counter()
        hand_loop(model, x, y, args.epochs, train.batch_size, train.lr, train.momentum, 0)
        sync(device)
        return time.perf_counter() - start

    run_cnnkit(), run_hand()  # warm-up: allocator, kernels, caches
    times: dict[str, list[float]] = {"cnnkit": [], "hand": []}
    runners = {"cnnkit": run_cnnkit, "hand": run_hand}
    for i in range(args.repeats):
        for name in ("cnnkit", "hand") if i % 2 == 0 else ("hand", "cnnkit"):  # ABBA: no drift bias
            times[name].append(runners[name]())
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "recipe": args.recipe,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "images_per_epoch": len(y),
        "epochs": args.epochs,
        "batch_size": train.batch_size,
        "repeats": args.repeats,
        "median_s": median,
        "images_per_s": {k: images / v for k, v in median.items()},
        "overhead": median["cnnkit"] / median["hand"] - 1,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.recipe} on {device}, {len(y)} images x {args.epochs} epochs, batch "
        f"{train.batch_size}, median of {args.repeats}"
    )
    for k in ("hand", "cnnkit"):
        print(f"  {k:>7}: {median[k]:.3f} s  {result['images_per_s'][k]:,.0f} img/s")
    print(
        f"  cnnkit / hand-written time: {median['cnnkit'] / median['hand']:.3f} "
        f"(overhead {result['overhead']:+.1%})"
    )


if __name__ == "__main__":
    main()
