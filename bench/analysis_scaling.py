"""How `cnnkit params` and `cnnkit rf` scale with the graph, against fvcore, in one run.

Cases: generated conv/bn/relu chains of 1,000 and 5,000 nodes (ending in global pooling and a
linear), DenseNet-121 with its blocks made `--set model.depth=D` times longer (D = 1..8: the
nodes grow as D, the edges as about D^2, since inside a dense block every layer reads every
earlier one) and the largest shipped recipes (most nodes, most parameters). For each:

- core: ``params_report`` and ``rf_report`` on the loaded recipe, in this process (the recipe
  load is its own column), as a library call makes them and again with the cyclic garbage
  collector paused, as the CLI runs them (``cnnkit.cli.output.paused_gc``);
- CLI: ``python -m cnnkit params|rf TARGET [--json]``, a fresh process each, table and JSON
  (start-up, imports, load, analysis and rendering: what a user or a CI script pays);
- fvcore: ``FlopCountAnalysis(model, x).total()`` on the built module (built on the meta device,
  then zeroed CPU storage, not timed), the reference; its conv + linear count must equal the
  analysis's MACs.

Times are CPU seconds (this process's, or the child's from ``getrusage``), not wall time:
the bench shares two cores with other jobs, and CPU time is what the work itself costs. torch
runs fvcore on one thread, so its CPU time is its wall time on an idle core. Best of
``--repeat`` for cnnkit, one run for fvcore (``--fvcore-repeat``). Ratios within one run;
no time is asserted anywhere. Exponents are least-squares slopes of log(time) on log(size).

    python bench/analysis_scaling.py [--depths 1,2,3,4,5,6,7,8] [--chains 1000,5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import resource
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
COLUMNS = ("params", "rf", "params_cli_json", "params_cli_table", "rf_cli_json", "rf_cli_table")
SCALING = (
    *("load", "load_gc_paused", "params", "params_gc_paused", "rf", "rf_gc_paused"),
    *COLUMNS[2:],
    "fvcore",
)


@dataclass
class Case:
    label: str
    target: str
    sets: list[str] = field(default_factory=list)
    times: dict[str, float] = field(default_factory=dict)
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


def cli(args: list[str]) -> None:
    subprocess.run([*CLI, *args], check=True, capture_output=True)


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
    sets = [a for s in case.sets for a in ("--set", s)]
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
    for command in ("params", "rf"):
        for form, extra in (("json", ["--json"]), ("table", [])):
            case.times[f"{command}_cli_{form}"] = best(
                repeat, lambda c=command, e=extra: cli([c, case.target, *sets, *e])
            )
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


def show(all_cases: list[Case]) -> None:
    print("CPU seconds (core: in this process; cli: a fresh `python -m cnnkit` process).\n")
    print(
        "| case | nodes | edges | load | params core | rf core | params cli --json "
        "| params cli table | rf cli --json | rf cli table | fvcore | params core / fvcore "
        "| params cli --json / fvcore | MACs = fvcore |"
    )
    print("| --- |" + " ---: |" * 13)
    for c in all_cases:
        t = c.times
        cells = [f"{t[k]:.3f}" for k in ("load", *COLUMNS, "fvcore")]
        print(
            f"| {c.label} | {c.nodes:,} | {c.edges:,} | {' | '.join(cells)} "
            f"| {t['params'] / t['fvcore']:.3f} | {t['params_cli_json'] / t['fvcore']:.2f} "
            f"| {'yes' if c.macs_agree else 'NO'} |"
        )


def show_scaling(all_cases: list[Case]) -> None:
    chains = [c for c in all_cases if c.label.startswith("chain")]
    if len(chains) >= 2:
        small, large = chains[0], chains[-1]
        ratio = large.nodes / small.nodes
        print(f"\nChain {large.nodes:,} / {small.nodes:,} nodes ({ratio:.1f}x): time ratio")
        for key in SCALING:
            print(f"- {key}: {large.times[key] / small.times[key]:.2f}x")
    dense = [c for c in all_cases if c.label.startswith("densenet121 depth=")]
    if len(dense) < 2:
        return
    print("\nDenseNet-121 by depth: microseconds per node and per edge (core paths)\n")
    print("| depth | nodes | edges | params us/node | params us/edge | rf us/node | rf us/edge |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in dense:
        p, r = c.times["params"] * 1e6, c.times["rf"] * 1e6
        print(
            f"| {c.label.split('=')[1]} | {c.nodes:,} | {c.edges:,} | {p / c.nodes:.1f} "
            f"| {p / c.edges:.1f} | {r / c.nodes:.1f} | {r / c.edges:.1f} |"
        )
    nodes, edges = [c.nodes for c in dense], [c.edges for c in dense]
    print(f"\nedges grow as nodes^{slope(nodes, edges):.2f}")
    for key in SCALING:
        times = [c.times[key] for c in dense]
        print(f"- {key}: time ~ nodes^{slope(nodes, times):.2f}, edges^{slope(edges, times):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--chains", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fvcore-repeat", type=int, default=1)
    args = parser.parse_args()
    cli(["params", "lenet", "--json"])  # warm the file cache once
    with tempfile.TemporaryDirectory() as folder:
        all_cases = cases(args, Path(folder))
        for case in all_cases:
            measure(case, args.repeat, args.fvcore_repeat)
            print(f"measured {case.label}", file=sys.stderr, flush=True)
    show(all_cases)
    show_scaling(all_cases)


if __name__ == "__main__":
    main()
