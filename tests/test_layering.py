"""The one-way layering of /work/shared/DESIGN.md ("Layers of the code"), read from the source.

An AST walk over cnnkit/ finds every import of a cnnkit module, at module level and inside
functions, and checks:

- no import cycle between cnnkit modules at module level (an import inside a function runs
  later, so it cannot deadlock a partly initialised module; it is how the torch side stays
  lazy), and none at all on the pure side;
- each import goes down (or sideways inside one layer): base < arith < layers < recipe <
  analysis (the pure side) < model/train/measure/plots (the torch side) < targets < reports <
  cli. So the pure side never imports the torch side, not even inside a function; reports
  and targets are imported by cli (and reports by nothing but cli); nothing imports cnnkit.cli.

A module not mapped in ``LAYER_OF`` counts as a top-level tool (like cli): it may import
anything, and nothing below cli may import it until it is mapped here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cnnkit"

# Shared base modules: anything may import them, and they import only each other.
BASE = ("errors", "atomic", "jsonsafe", "interrupts", "parsing", "validation")

# Rank of each layer: an import must go to the same or a lower rank (the same rank only
# within one layer, except the torch side, whose packages use each other).
RANKS = {
    "base": 0,
    "arith": 1,
    "layers": 2,
    "recipe": 3,
    "analysis": 4,
    "torch side": 5,
    "targets": 6,
    "reports": 7,
    "cli": 8,
}
PREFIXES = {  # first part under cnnkit -> layer
    **{name: "base" for name in BASE},
    "arith": "arith",
    "layers": "layers",
    "recipe": "recipe",
    "analysis": "analysis",
    "model": "torch side",
    "train": "torch side",
    "measure": "torch side",
    "plots": "torch side",
    "targets": "targets",
    "reports": "reports",
    "cli": "cli",
    "__main__": "cli",
}


def layer_of(module: str) -> str:
    """The layer of a dotted cnnkit module name; the root package (version, lazy facade) is
    base, an unmapped module is a top-level tool (``cli``)."""
    parts = module.split(".")
    if parts == ["cnnkit"]:
        return "base"
    return PREFIXES.get(parts[1], "cli")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported cnnkit module
    line: int
    module_level: bool

    def __str__(self) -> str:
        where = "module level" if self.module_level else "in a function"
        known = MODULES.get(self.source)
        path = known.relative_to(ROOT.parent) if known else self.source.replace(".", "/") + ".py"
        return f"{path}:{self.line}: {self.source} -> {self.target} ({where})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module an ``import from`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    keep = len(base) - node.level + (1 if _is_package(module) else 0)
    return ".".join(base[:keep] + ([node.module] if node.module else []))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The cnnkit modules an import statement runs: a submodule named in ``from pkg import
    sub`` is the submodule, a name defined in ``pkg/__init__.py`` is the package."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "cnnkit":
                yield _known(alias.name)
        return
    package = _absolute(module, node)
    if package.split(".")[0] != "cnnkit":
        return
    for alias in node.names:
        sub = f"{package}.{alias.name}"
        yield sub if sub in MODULES else _known(package)


def _known(module: str) -> str:
    """``module``, or its nearest existing parent (``import cnnkit.x.y`` of a missing y)."""
    while module not in MODULES and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def _walk(node: ast.AST, module_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if _type_checking(child):
            continue  # annotations only: never run
        inner = module_level and not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        yield child, inner
        yield from _walk(child, inner)


def imports() -> list[Import]:
    """Every import of a cnnkit module by a cnnkit module, once per statement and target."""
    found: dict[Import, None] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, module_level in _walk(tree, True):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, node):
                    if target != module:
                        found[Import(module, target, node.lineno, module_level)] = None
    return list(found)


ALL = imports()


def _allowed(edge: Import) -> bool:
    mine, theirs = layer_of(edge.source), layer_of(edge.target)
    if RANKS[theirs] < RANKS[mine]:
        return True
    if mine == theirs:  # sideways: inside one layer (base modules, one package, the torch side)
        return mine in ("torch side", "cli") or mine == "base" or _same_package(edge)
    return False


def _same_package(edge: Import) -> bool:
    return edge.source.split(".")[:2] == edge.target.split(".")[:2]


def test_every_import_goes_down_the_layers():
    wrong = [
        f"  {e}   [{layer_of(e.source)} -> {layer_of(e.target)}]" for e in ALL if not _allowed(e)
    ]
    assert not wrong, "imports against the layering of DESIGN.md:\n" + "\n".join(wrong)


def _cycles(edges: list[Import]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), as a sorted list."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles_at_module_level():
    edges = [e for e in ALL if e.module_level]
    cycles = _cycles(edges)
    detail = []
    for group in cycles:
        detail.append("  " + " <-> ".join(group))
        detail += [f"    {e}" for e in edges if e.source in group and e.target in group]
    assert not cycles, "module-level import cycles:\n" + "\n".join(detail)


PURE = ("base", "arith", "layers", "recipe", "analysis")


def test_no_import_cycles_on_the_pure_side_even_inside_functions():
    """The pure side has no reason for a lazy import of its own modules: a cycle there is
    a missing shared module (recipe/model.py <-> recipe/expand.py was one)."""
    edges = [e for e in ALL if layer_of(e.source) in PURE and layer_of(e.target) in PURE]
    cycles = _cycles(edges)
    detail = [f"  {e}" for e in edges if any({e.source, e.target} <= set(g) for g in cycles)]
    assert not cycles, "import cycles on the pure side:\n" + "\n".join(detail)


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("cnnkit.layers.conv", "cnnkit.arith.sizes", True),
        ("cnnkit.arith.sizes", "cnnkit.layers", False),
        ("cnnkit.analysis.costs", "cnnkit.model.builders", False),
        ("cnnkit.model.builders", "cnnkit.layers", True),
        ("cnnkit.train.plan", "cnnkit.model.build", True),
        ("cnnkit.measure.verify", "cnnkit.cli.params", False),
        ("cnnkit.measure.verify", "cnnkit.reports.params", False),
        ("cnnkit.targets", "cnnkit.reports.params", False),
        ("cnnkit.reports.params", "cnnkit.targets", True),
        ("cnnkit.cli.params", "cnnkit.reports.params", True),
        ("cnnkit.layers.conv", "cnnkit.recipe.graph", False),
        ("cnnkit.recipe.model", "cnnkit.validation", True),
        ("cnnkit.validation", "cnnkit.layers", False),
        ("cnnkit.analysis.costs", "cnnkit.newtool", False),
    ],
)
def test_the_rules_themselves(source, target, ok):
    assert _allowed(Import(source, target, 1, True)) is ok


def test_the_walk_sees_module_and_function_level_imports():
    edges = {(e.source, e.target): e.module_level for e in ALL}
    assert edges[("cnnkit.recipe.model", "cnnkit.recipe.expand")] is True
    assert edges[("cnnkit.recipe.model", "cnnkit.recipe.overrides")] is False
    assert ("cnnkit.layers.conv", "cnnkit.layers._checks") in edges  # from pkg import sub
    fake = [Import("a", "b", 1, True), Import("b", "c", 1, True), Import("c", "a", 1, True)]
    assert _cycles(fake) == [["a", "b", "c"]]
