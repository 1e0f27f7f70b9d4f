"""Reading a recipe's YAML: pure-Python PyYAML against libyaml's parser, in one run.

Generated chains of 1,000 / 5,000 / 10,000 conv+relu nodes are read by
``cnnkit.recipe.source.read_yaml`` with ``fast=False`` (PyYAML's pure-Python scanner and
parser) and ``fast=True`` (libyaml's parser under the same Python composer, constructor and
line walk), best of ``--repeat`` in CPU seconds. Ratios within one run, so the machine's speed
cancels out; no absolute time is asserted anywhere. Both paths must give the same document.

    python bench/yaml_speed.py [--sizes 1000,5000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from cnnkit.recipe.source import _c_parser, read_yaml


def chain(nodes: int) -> str:
    """A recipe text whose layer list is ``nodes`` long (conv and relu alternating)."""
    lines = ["input: [3, 32, 32]", "model:", "  layers:"]
    for i in range(nodes // 2):
        lines.append(f"    - {{conv: {{out: {16 + i % 8}, k: 3, padding: 1}}, name: c{i}}}")
        lines.append("    - relu")
    return "\n".join(lines) + "\n"


def best(repeat: int, text: str, fast: bool) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        read_yaml(text, "chain.yaml", fast)
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if _c_parser() is None:
        raise SystemExit("this PyYAML has no libyaml: nothing to compare")
    print(f"{'nodes':>7}  {'pure s':>8}  {'libyaml s':>9}  {'speed-up':>8}")
    for nodes in (int(n) for n in args.sizes.split(",")):
        text = chain(nodes)
        assert read_yaml(text, "c", True)[0] == read_yaml(text, "c", False)[0]
        pure, fast = best(args.repeat, text, False), best(args.repeat, text, True)
        print(f"{nodes:>7,}  {pure:8.3f}  {fast:9.3f}  {pure / fast:7.2f}x")


if __name__ == "__main__":
    main()
