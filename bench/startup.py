"""Start-up benchmark: wall time of a fresh `cnnkit conv` process against `import torch`.

Each command runs in a new process (what a user or CI script pays per call); the first run
of each warms the file cache and is discarded; the median of the rest is reported.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

CNNKIT = shutil.which("cnnkit") or f"{sys.executable} -m cnnkit"
COMMANDS = {
    "cnnkit conv (sizes)": [
        *CNNKIT.split(),
        "conv",
        "--input",
        "3x224x224",
        "--kernel",
        "11",
        "--stride",
        "4",
        "--out-channels",
        "96",
    ],
    "cnnkit conv --json": [*CNNKIT.split(), "conv", "-i", "224", "-k", "11", "-s", "4", "--json"],
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"{'command':32} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, cmd in COMMANDS.items():
        wall(cmd)  # warm the file cache
        times = [wall(cmd) for _ in range(args.runs)]
        print(f"{name:32} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f}")


if __name__ == "__main__":
    main()
