"""How `cnnkit rf`'s analysis scales with the size of the graph, in one run.

DenseNet-121 with its blocks made `--set model.depth=D` times longer: the nodes grow as D, the
edges as about D^2 (inside a dense block every layer reads every earlier one), so an algebra that
is linear in the edges shows time ~ edges^1 and ~ nodes^(a bit under 2). The receptive-field
pass (``analysis.receptive_fields``) and the whole document (``rf_report``, which adds the
per-layer table) are timed in this process, best of ``--repeat``; the recipe load is reported
apart. The exponent is the least-squares slope of log(time) against log(size). Ratios within one
run, so the machine's speed cancels out; no absolute time is asserted anywhere.

    python bench/rf_speed.py [--depths 1,2,4,8] [--repeat 3]

``bench/analysis_scaling.py`` runs this together with ``cnnkit params``, the CLI paths and fvcore
(bench/RESULTS.md, issue 13).
"""

from __future__ import annotations

import argparse
import math
import time

from cnnkit.analysis.receptive import receptive_fields
from cnnkit.analysis.rf_report import rf_report
from cnnkit.recipe import load_recipe


def best(repeat: int, work, arg) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work(arg)
        times.append(time.perf_counter() - start)
    return min(times)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x): the scaling exponent."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1,2,4,8")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    print("| depth | nodes | edges | load s | fields s | rf_report s | fields us/edge |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for depth in (int(d) for d in args.depths.split(",")):
        sets = [f"model.depth={depth}"] if depth != 1 else []
        start = time.perf_counter()
        recipe = load_recipe("densenet121", sets)
        load = time.perf_counter() - start
        graph = recipe.graph
        assert graph is not None
        nodes = len(graph.nodes)
        edges = sum(len(n.inputs) for n in graph.nodes)
        fields = best(args.repeat, receptive_fields, graph)
        report = best(args.repeat, rf_report, recipe)
        rows.append((nodes, edges, fields, report))
        print(
            f"| {depth} | {nodes:,} | {edges:,} | {load:.3f} | {fields:.3f} | {report:.3f} "
            f"| {fields / edges * 1e6:.1f} |"
        )
    nodes, edges, fields, report = (list(c) for c in zip(*rows))
    print()
    print(f"edges grow as nodes^{slope(nodes, edges):.2f}")
    print(
        f"receptive_fields: time ~ edges^{slope(edges, fields):.2f}, "
        f"nodes^{slope(nodes, fields):.2f}"
    )
    print(
        f"rf_report:        time ~ edges^{slope(edges, report):.2f}, "
        f"nodes^{slope(nodes, report):.2f}"
    )


if __name__ == "__main__":
    main()
