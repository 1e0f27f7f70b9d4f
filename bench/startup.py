"""Start-up benchmark: wall time of fresh cnnkit processes against plain Python and `import torch`.

Each command runs in a new process (what a user or CI script pays per call). The commands take
turns, run after run, so a machine that gets busier half-way slows them all alike; the first
round warms the file cache and is discarded; the median of the rest is reported, with its ratio
to `python -c pass` (the floor: the interpreter alone) and to `python -c "import torch"` (what
any torch-based tool pays before its first line of work). Goals (issue 12): `cnnkit conv` and
`cnnkit rf --layers` under 0.15 s, `cnnkit params resnet50 --json` under 0.2 s.

    python bench/startup.py [--runs 15] [--markdown] [--baseline DIR]

``--baseline DIR`` also times each cnnkit command from another checkout (``PYTHONPATH=DIR``),
in the same rounds, so a before/after comparison sees the same machine load. Bytecode is
cached (in a private temporary folder, ``PYTHONPYCACHEPREFIX``) as it is after ``pip install``,
even where ``PYTHONDONTWRITEBYTECODE`` is set: compiling cnnkit's own modules from source costs
~40 ms a call, which no installed copy pays. ``--no-bytecode`` measures that case instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CNNKIT = shutil.which("cnnkit") or f"{sys.executable} -m cnnkit"
LAYERS = "conv k=11 s=4; maxpool k=3 s=2; conv k=5 p=2"
CONV = ["conv", "--input", "3x224x224", "--kernel", "11", "--stride", "4", "--out-channels", "96"]
# name: (command, goal in seconds or None)
COMMANDS: dict[str, tuple[list[str], float | None]] = {
    "cnnkit conv (sizes)": ([*CNNKIT.split(), *CONV], 0.15),
    "cnnkit conv --json": ([*CNNKIT.split(), "conv", "-i", "224", "-k", "11", "--json"], 0.15),
    "cnnkit rf --layers": ([*CNNKIT.split(), "rf", "--layers", LAYERS, "--input", "227"], 0.15),
    "cnnkit params resnet50 --json": ([*CNNKIT.split(), "params", "resnet50", "--json"], 0.2),
    "cnnkit params resnet50": ([*CNNKIT.split(), "params", "resnet50"], None),
    "cnnkit --help": ([*CNNKIT.split(), "--help"], None),
    "python -c pass": ([sys.executable, "-c", "pass"], None),
    "python -c 'import torch'": ([sys.executable, "-c", "import torch"], None),
}


ENV = dict(os.environ)


def wall(cmd: list[str], checkout: str | None = None) -> float:
    env = ENV if checkout is None else {**ENV, "PYTHONPATH": checkout}
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=checkout
    )
    return time.perf_counter() - start


def measure(runs: int, baseline: str | None) -> dict[str, list[float]]:
    """Every command once per round, ``runs`` rounds after one warm-up round."""
    plan = [(name, cmd, None) for name, (cmd, _) in COMMANDS.items()]
    if baseline:
        plan += [
            (f"{name} (baseline)", cmd, baseline)
            for name, (cmd, _) in COMMANDS.items()
            if name.startswith("cnnkit")
        ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in plan}
    for round_ in range(runs + 1):
        for name, cmd, checkout in plan:
            took = wall(cmd, checkout)
            if round_:
                times[name].append(took)
    return times


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--markdown", action="store_true", help="Print a Markdown table.")
    parser.add_argument("--baseline", help="Another checkout to time the same commands from.")
    parser.add_argument("--no-bytecode", action="store_true", help="Compile every module anew.")
    args = parser.parse_args()
    if args.no_bytecode:
        ENV["PYTHONDONTWRITEBYTECODE"] = "1"
        ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="cnnkit-empty-pycache-")
    else:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        ENV["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="cnnkit-startup-pycache-")
    times = measure(args.runs, args.baseline)
    median = {name: statistics.median(t) for name, t in times.items()}
    floor, torch = median["python -c pass"], median["python -c 'import torch'"]
    head = ("command", "median s", "min s", "max s", "x pass", "x torch", "goal")
    rows = []
    for name, t in times.items():
        goal = COMMANDS.get(name, ((), None))[1]
        verdict = (
            "" if goal is None else f"< {goal} s: {'met' if median[name] < goal else 'MISSED'}"
        )
        rows.append(
            (
                name,
                f"{median[name]:.3f}",
                f"{min(t):.3f}",
                f"{max(t):.3f}",
                f"{median[name] / floor:.1f}",
                f"{median[name] / torch:.3f}",
                verdict,
            )
        )
    cached = "modules compiled anew" if args.no_bytecode else "bytecode cached"
    print(f"{machine()}; {args.runs} runs each, medians; {cached}")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    print(f"{head[0]:42} " + " ".join(f"{h:>9}" for h in head[1:-1]) + "  goal")
    for row in rows:
        print(f"{row[0]:42} " + " ".join(f"{c:>9}" for c in row[1:-1]) + f"  {row[-1]}")


if __name__ == "__main__":
    main()
