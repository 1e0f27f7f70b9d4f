"""The shape of the code, read from the source (AST): issue 12's "no function in cnnkit/cli
over 60 lines" (the Typer signature and docstring included), CONTRIBUTING's "no function over
about 60 lines" for the whole package, and one home for the options every command shares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cnnkit"
LIMIT = 60
SHARED = ("--json", "--debug")  # declared once, in cnnkit/cli/options.py


def long_functions(source: str, limit: int = LIMIT) -> list[tuple[str, int]]:
    """(name, lines) of every function, method or nested function longer than ``limit``,
    counted from its first decorator (or ``def``) to its last line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - first + 1
            if lines > limit:
                found.append((node.name, lines))
    return found


def _sources(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.py"))
    assert files, f"no Python files under {folder}"
    return files


def test_the_measure_counts_signature_docstring_and_nested_functions() -> None:
    params = "".join(f"    a{i}: int = {i},\n" for i in range(30))
    body = "".join(f"    x{i} = {i}\n" for i in range(25))
    long_one = f'def command(\n{params}) -> None:\n    """Doc.\n\n    More.\n    """\n{body}'
    assert long_functions(long_one) == [("command", 30 + 2 + 4 + 25)]
    nested = "def outer():\n    def inner():\n" + "".join(
        f"        y{i} = {i}\n" for i in range(61)
    )
    assert [name for name, _ in long_functions(nested)] == ["outer", "inner"]
    assert long_functions("def short():\n    return 1\n") == []


@pytest.mark.parametrize("path", _sources(ROOT / "cli"), ids=lambda p: p.name)
def test_no_cli_function_is_over_60_lines(path: Path) -> None:
    assert long_functions(path.read_text(encoding="utf-8")) == [], (
        f"{path.name}: move Typer option declarations into module-level Annotated aliases "
        "(shared ones in cnnkit/cli/options.py) or split the body"
    )


def test_no_function_in_the_package_is_over_60_lines() -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)}: {name} ({lines} lines)"
        for path in _sources(ROOT)
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def _option_declarations(path: Path) -> list[str]:
    """The first flag of every ``typer.Option(...)`` call in a module."""
    flags = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "Option"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            flags.append(node.args[0].value)
    return flags


def test_the_shared_options_have_one_home() -> None:
    homes = {
        flag: [p.name for p in _sources(ROOT / "cli") if flag in _option_declarations(p)]
        for flag in SHARED
    }
    # app.py's --debug is the root option (before the command), not a command's
    assert homes == {"--json": ["options.py"], "--debug": ["app.py", "options.py"]}
