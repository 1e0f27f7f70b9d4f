"""Cold wall time of `cnnkit params` (and `cnnkit rf`) against fvcore and torchinfo, with a
check that they count the same network the same way.

Every row is a fresh process (what a user or a CI script pays per call: interpreter start,
imports, building the model where the tool needs one, counting). The first run of each
warms the file cache and is discarded; the median of the rest is reported. The fvcore and
torchinfo rows build ResNet-50 from the same recipe with `cnnkit.build` (what a user of
those tools does with their own model) and count it at batch 1.

    python bench/analysis_speed.py [--runs 7] [--recipe recipes/resnet50.yaml]

torchinfo is a bench-only tool (`pip install torchinfo`); its row is skipped if it is absent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

CNNKIT = (shutil.which("cnnkit") or f"{sys.executable} -m cnnkit").split()

FVCORE = """
import json, sys, warnings
warnings.simplefilter("ignore")
import torch, cnnkit
from fvcore.nn import FlopCountAnalysis
from cnnkit.model import example_input
recipe = cnnkit.load_recipe(sys.argv[1])
model = cnnkit.build(recipe).eval()
analysis = FlopCountAnalysis(model, example_input(recipe))
analysis.unsupported_ops_warnings(False)
with torch.no_grad():
    ops = analysis.by_operator()
macs = sum(v for k, v in ops.items() if k in ("conv", "linear", "addmm"))
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"params": params, "macs": macs, "all": analysis.total()}))
"""

TORCHINFO = """
import json, sys, warnings
warnings.simplefilter("ignore")
import torch, cnnkit
from torchinfo import summary
recipe = cnnkit.load_recipe(sys.argv[1])
model = cnnkit.build(recipe).eval()
stats = summary(model, input_size=(1, *recipe.input_shape), verbose=0)
print(json.dumps({"params": stats.total_params, "macs": stats.total_mult_adds}))
"""


def wall(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def available(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


def measure(cmd: list[str], runs: int) -> tuple[list[float], str]:
    _, out = wall(cmd)  # warm the file cache
    times = []
    for _ in range(runs):
        elapsed, out = wall(cmd)
        times.append(elapsed)
    return times, out


def counts(name: str, out: str) -> dict[str, int] | None:
    if not out.strip():
        return None
    if name.startswith("cnnkit params"):
        doc = json.loads(out)
        return {"params": doc["totals"]["params"], "macs": doc["totals"]["macs"]}
    if name.startswith("cnnkit rf"):
        return None
    doc = json.loads(out.strip().splitlines()[-1])
    return {"params": doc["params"], "macs": doc["macs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--recipe", default="recipes/resnet50.yaml")
    args = parser.parse_args()
    recipe = args.recipe
    rows: dict[str, list[str] | None] = {
        f"cnnkit params {recipe} --json": [*CNNKIT, "params", recipe, "--json"],
        f"cnnkit rf {recipe} --json": [*CNNKIT, "rf", recipe, "--json"]
        if available([*CNNKIT, "rf", "--help"])
        else None,
        "fvcore FlopCountAnalysis (build + count)": [sys.executable, "-c", FVCORE, recipe],
        "torchinfo summary (build + count)": [sys.executable, "-c", TORCHINFO, recipe]
        if available([sys.executable, "-c", "import torchinfo"])
        else None,
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    layers: list[dict] = []
    print(f"{'command':48} {'median s':>9} {'min s':>7} {'max s':>7} {'x params':>9}  counts")
    base = None
    reference = None
    for name, cmd in rows.items():
        if cmd is None:
            print(f"{name:48} {'skipped (not available)':>35}")
            continue
        times, out = measure(cmd, args.runs)
        median = statistics.median(times)
        base = base or median
        found = counts(name, out)
        if name.startswith("cnnkit params"):
            layers = json.loads(out)["layers"]
        reference = reference or found
        same = ""
        if found is not None and reference is not None:
            same = "  ".join(
                f"{k} {v:,} ({'same' if v == reference[k] else 'DIFFERENT'})"
                for k, v in found.items()
            )
        ratio = median / base
        print(f"{name:48} {median:9.3f} {min(times):7.3f} {max(times):7.3f} {ratio:8.1f}x  {same}")
        if name.startswith("torchinfo") and found and reference and found != reference:
            print(f"{'':48} {torchinfo_note(found['macs'] - reference['macs'], layers)}")


def torchinfo_note(extra: int, layers: list[dict]) -> str:
    """torchinfo's mult-adds add, per call, the parameter count of BN layers and the biases
    of linear (and biased conv) layers per output position; say whether that is all of it."""
    bn = sum(r["params"] for r in layers if r["kind"] == "bn")
    bias = sum(r["ops"] - r["macs"] for r in layers if r["kind"] in ("conv", "linear"))
    verdict = "exactly that" if extra == bn + bias else "NOT only that"
    return (
        f"torchinfo adds {extra:,}: BN weights {bn:,} + bias adds {bias:,} "
        f"({verdict}); conv/linear weight MACs agree"
    )


if __name__ == "__main__":
    main()
