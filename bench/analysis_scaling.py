"""How `cnnkit params` and `cnnkit rf` scale with the graph, against fvcore, in one run.

Cases: generated conv/bn/relu chains of 1,000 and 5,000 nodes (ending in global pooling and a
linear), DenseNet-121 with its blocks made `--set model.depth=D` times longer (D = 1..8: the
nodes grow as D, the edges as about D^2, since inside a dense block every layer reads every
earlier one) and the largest shipped recipes (most nodes, most parameters). For each:

- core: ``params_report`` and ``rf_report`` on the loaded recipe, in this process (the recipe
  load is its own column), as a library call makes them and again with the cyclic garbage
  collector paused, as the CLI runs them (``cnnkit.cli.output.paused_gc``);
- CLI: ``python -m cnnkit params|rf TARGET [--json]``, a fresh process each, table (stdout a
  pipe) and JSON: start-up, imports, load, analysis and rendering, what a user or a CI script
  pays. The CLI runs are interleaved: each round runs every case's four commands (and
  ``cnnkit params lenet --json``, the start-up floor) once, ``--rounds`` rounds after a
  warm-up round, and the median is reported, so a machine that gets busier half-way slows
  every command alike. ``--baseline DIR`` also runs them from another checkout (the code
  before a change) in the same rounds;
- fvcore: ``FlopCountAnalysis(model, x).total()`` on the built module (built on the meta device,
  then zeroed CPU storage, not timed), the reference; its conv + linear count must equal the
  analysis's MACs.

Times are CPU seconds (this process's, or the child's from ``getrusage``), not wall time:
the bench shares two cores with other jobs, and CPU time is what the work itself costs. torch
runs fvcore on one thread, so its CPU time is its wall time on an idle core. Best of
``--repeat`` for the in-process calls, one run for fvcore (``--fvcore-repeat``), medians of
the interleaved rounds for the CLI. Ratios within one run; no time is asserted anywhere.
Linearity: each CLI time less the start-up floor, per node, and the least-squares slopes of
log(time - floor) on log(nodes) and log(edges) over the DenseNet depths (1: linear).

    python bench/analysis_scaling.py [--depths 1,2,...,8] [--chains 1000,5000] [--repeat 3]
        [--rounds 5] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnnkit.cli.output import paused_gc
from cnnkit.recipe import Recipe, builtin_recipes, load_recipe
from cnnkit.reports.params import params_report
from cnnkit.reports.rf import rf_report

CLI = [sys.executable, "-m", "cnnkit"]
COMMANDS = ("params_cli_table", "params_cli_json", "rf_cli_table", "rf_cli_json")
CORE = ("load", "load_gc_paused", "params", "params_gc_paused", "rf", "rf_gc_paused")
SCALING = (*CORE, *COMMANDS, "fvcore")
FLOOR = ["params", "lenet", "--json"]  # a fresh process with next to no work: the start-up


@dataclass
class Case:
    label: str
    target: str
    sets: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)  # CLI CPU s, round by round
    nodes: int = 0
    edges: int = 0
    macs_agree: bool | None = None


def chain_text(nodes: int) -> str:
    """A recipe of exactly ``nodes`` layers: conv(8, k3, p1) / bn / relu repeated, then a
    global average pooling and a linear."""
    cycle = ["{conv: {out: 8, k: 3, p: 1}}", "bn", "relu"]
    lines = ["# a generated chain (bench/analysis_scaling.py)", "input: [8, 16, 16]", "model:"]
    lines.append("  layers:")
    lines += [f"    - {cycle[i % 3]}" for i in range(nodes - 2)]
    lines += ["    - global_avgpool", "    - {linear: 10}"]
    return "\n".join(lines) + "\n"


def cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = cpu()
        work()
        times.append(cpu() - start)
    return min(times)


def cli(args: list[str], checkout: str | None = None) -> float:
    """CPU seconds of one fresh ``python -m cnnkit ARGS`` process (from ``checkout``, if
    given: ``python -m`` imports the package of its working directory first)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([*CLI, *args], check=True, capture_output=True, cwd=checkout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def fvcore_time(recipe: Recipe, macs: int, repeat: int) -> tuple[float, bool]:
    """Seconds of fvcore's count on the built module, and whether its conv + linear MACs are
    the analysis's."""
    import torch

    from cnnkit.measure.verify import MAC_OPERATORS, counting_module
    from cnnkit.model.build import example_input

    warnings.simplefilter("ignore")
    from fvcore.nn import FlopCountAnalysis

    torch.set_num_threads(1)
    model, x = counting_module(recipe), example_input(recipe, 1)
    found: dict[str, int] = {}

    def count() -> None:
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        with torch.no_grad():
            found.update(analysis.by_operator())

    seconds = best(repeat, count)
    return seconds, sum(v for k, v in found.items() if k in MAC_OPERATORS) == macs


def measure(case: Case, repeat: int, fvcore_repeat: int) -> None:
    """The in-process columns and fvcore (the CLI columns are ``interleave``'s)."""
    case.times["load"] = best(repeat, lambda: load_recipe(case.target, case.sets))
    recipe = load_recipe(case.target, case.sets)
    assert recipe.graph is not None
    case.nodes = len(recipe.graph.nodes)
    case.edges = sum(len(n.inputs) for n in recipe.graph.nodes)
    doc: dict = {}
    case.times["params"] = best(repeat, lambda: doc.update(params_report(recipe)))
    case.times["rf"] = best(repeat, lambda: rf_report(recipe))
    with paused_gc():  # what the CLI does: the analysis alone, without full collections
        case.times["load_gc_paused"] = best(repeat, lambda: load_recipe(case.target, case.sets))
        case.times["params_gc_paused"] = best(repeat, lambda: params_report(recipe))
        case.times["rf_gc_paused"] = best(repeat, lambda: rf_report(recipe))
    fvcore, agree = fvcore_time(recipe, doc["totals"]["macs"], fvcore_repeat)
    case.times["fvcore"], case.macs_agree = fvcore, agree


def largest_shipped() -> list[tuple[str, str]]:
    """The shipped recipes with the most nodes and with the most parameters."""
    sizes = {}
    for name in builtin_recipes():
        recipe = load_recipe(name)
        assert recipe.graph is not None
        sizes[name] = (len(recipe.graph.nodes), params_report(recipe)["totals"]["params"])
    by_nodes = max(sizes, key=lambda n: sizes[n][0])
    by_params = max(sizes, key=lambda n: sizes[n][1])
    return [("most nodes", by_nodes), ("most parameters", by_params)]


def cases(args: argparse.Namespace, folder: Path) -> list[Case]:
    found = []
    for size in (int(s) for s in args.chains.split(",")):
        path = folder / f"chain{size}.yaml"
        path.write_text(chain_text(size), encoding="utf-8")
        found.append(Case(f"chain {size:,}", str(path)))
    for depth in (int(d) for d in args.depths.split(",")):
        found.append(Case(f"densenet121 depth={depth}", "densenet121", [f"model.depth={depth}"]))
    for why, name in largest_shipped():
        found.append(Case(f"{name} ({why})", name))
    return found


def command_args(case: Case, command: str) -> list[str]:
    name, _, form = command.split("_")
    sets = [a for s in case.sets for a in ("--set", s)]
    return [name, case.target, *sets, *(["--json"] if form == "json" else [])]


def interleave(all_cases: list[Case], rounds: int, baseline: str | None) -> dict[str, list]:
    """Every case's CLI commands (and the start-up floor), once a round, for ``rounds``
    rounds after a warm-up round; from ``baseline`` too, in the same rounds. Returns the
    floor's samples, by checkout."""
    checkouts = {"": None, **({" (baseline)": baseline} if baseline else {})}
    floor: dict[str, list] = {tag: [] for tag in checkouts}
    for round_ in range(rounds + 1):
        for tag, checkout in checkouts.items():
            took = cli(FLOOR, checkout)
            if round_:
                floor[tag].append(took)
            for case in all_cases:
                for command in COMMANDS:
                    took = cli(command_args(case, command), checkout)
                    if round_:
                        case.samples.setdefault(command + tag, []).append(took)
        print(f"round {round_} of {rounds} done", file=sys.stderr, flush=True)
    for case in all_cases:
        case.times.update({k: statistics.median(v) for k, v in case.samples.items()})
    return floor


def show(all_cases: list[Case], rounds: int) -> None:
    print(
        f"CLI: CPU seconds of a fresh `python -m cnnkit` process (stdout a pipe), median of "
        f"{rounds} interleaved rounds; fvcore: `FlopCountAnalysis` on the built module.\n"
    )
    print(
        "| case | nodes | edges | params table | params --json | table / --json | rf table "
        "| rf --json | table / --json | fvcore | params --json / fvcore "
        "| params table / fvcore | rf table / fvcore | MACs = fvcore |"
    )
    print("| --- |" + " ---: |" * 13)
    for c in all_cases:
        t = c.times
        print(
            f"| {c.label} | {c.nodes:,} | {c.edges:,} | {t['params_cli_table']:.3f} "
            f"| {t['params_cli_json']:.3f} | {t['params_cli_table'] / t['params_cli_json']:.2f} "
            f"| {t['rf_cli_table']:.3f} | {t['rf_cli_json']:.3f} "
            f"| {t['rf_cli_table'] / t['rf_cli_json']:.2f} | {t['fvcore']:.3f} "
            f"| {t['params_cli_json'] / t['fvcore']:.2f} "
            f"| {t['params_cli_table'] / t['fvcore']:.2f} | {t['rf_cli_table'] / t['fvcore']:.2f} "
            f"| {'yes' if c.macs_agree else 'NO'} |"
        )


def show_baseline(all_cases: list[Case]) -> None:
    """Before (the baseline checkout) and after, from the same interleaved rounds."""
    if "params_cli_table (baseline)" not in all_cases[0].times:
        return
    print("\nBefore (--baseline) and after, CPU seconds, same rounds: before / after\n")
    print("| case | " + " | ".join(c.replace("_cli_", " ") for c in COMMANDS) + " |")
    print("| --- |" + " ---: |" * len(COMMANDS))
    for c in all_cases:
        cells = [
            f"{c.times[k + ' (baseline)']:.3f} / {c.times[k]:.3f}"
            f" ({c.times[k + ' (baseline)'] / c.times[k]:.1f}x)"
            for k in COMMANDS
        ]
        print(f"| {c.label} | {' | '.join(cells)} |")


def show_core(all_cases: list[Case]) -> None:
    print("\nIn-process CPU seconds (library calls; `*_gc_paused`: as the CLI runs them)\n")
    print("| case | " + " | ".join(CORE) + " |")
    print("| --- |" + " ---: |" * len(CORE))
    for c in all_cases:
        print(f"| {c.label} | " + " | ".join(f"{c.times[k]:.3f}" for k in CORE) + " |")


def show_scaling(all_cases: list[Case], floor: float) -> None:
    """Linearity: the chain ratio, and per node and fitted exponents over DenseNet's depths,
    of each time less the start-up floor (the CLI columns) or as it is (in process)."""
    work = lambda c, k: c.times[k] - (floor if k in COMMANDS else 0.0)  # noqa: E731
    chains = [c for c in all_cases if c.label.startswith("chain")]
    print(f"\nStart-up floor (`cnnkit {' '.join(FLOOR)}`, median): {floor:.3f} s")
    if len(chains) >= 2:
        small, large = chains[0], chains[-1]
        ratio = large.nodes / small.nodes
        print(f"\nChain {large.nodes:,} / {small.nodes:,} nodes ({ratio:.1f}x): time ratio")
        for key in SCALING:
            print(f"- {key}: {work(large, key) / work(small, key):.2f}x")
    dense = [c for c in all_cases if c.label.startswith("densenet121 depth=")]
    if len(dense) < 2:
        return
    print("\nDenseNet-121 by depth: microseconds per node, CLI less the start-up floor\n")
    print("| depth | nodes | edges | " + " | ".join(COMMANDS) + " | fvcore |")
    print("| ---: | ---: | ---: |" + " ---: |" * (len(COMMANDS) + 1))
    for c in dense:
        cells = [f"{work(c, k) * 1e6 / c.nodes:.0f}" for k in (*COMMANDS, "fvcore")]
        print(f"| {c.label.split('=')[1]} | {c.nodes:,} | {c.edges:,} | {' | '.join(cells)} |")
    nodes, edges = [c.nodes for c in dense], [c.edges for c in dense]
    print(f"\nedges grow as nodes^{slope(nodes, edges):.2f}. Least-squares line over the depths,")
    print("time = a + b * nodes (R^2: 1 is a straight line), and log-log slopes of the time")
    print("less the floor (1: linear; 1.78 would be linear in the edges):\n")
    print("| time | a, s | b, us/node | R^2 | ~ nodes^ | ~ edges^ |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key in SCALING:
        times = [c.times[key] for c in dense]
        a, b, r2 = linear_fit(nodes, times)
        less = [max(work(c, key), 1e-6) for c in dense]
        print(
            f"| {key} | {a:.3f} | {b * 1e6:.1f} | {r2:.3f} | {slope(nodes, less):.2f} "
            f"| {slope(edges, less):.2f} |"
        )


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Intercept, slope and R^2 of the least-squares line through (xs, ys)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    a = my - b * mx
    total = sum((y - my) ** 2 for y in ys)
    left = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, 1 - left / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--chains", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3, help="in-process calls: best of N")
    parser.add_argument("--rounds", type=int, default=5, help="CLI: median of N rounds")
    parser.add_argument("--fvcore-repeat", type=int, default=1)
    parser.add_argument("--baseline", help="another checkout, timed in the same CLI rounds")
    args = parser.parse_args()
    baseline = str(Path(args.baseline).resolve()) if args.baseline else None
    with tempfile.TemporaryDirectory() as folder:
        all_cases = cases(args, Path(folder))
        for case in all_cases:
            measure(case, args.repeat, args.fvcore_repeat)
            print(f"measured {case.label}", file=sys.stderr, flush=True)
        floor = interleave(all_cases, args.rounds, baseline)
    show(all_cases, args.rounds)
    show_baseline(all_cases)
    show_core(all_cases)
    show_scaling(all_cases, statistics.median(floor[""]))


if __name__ == "__main__":
    main()
