"""Built-in recipes: the ``recipes/`` folder of the source tree (or the copy installed in
the package as ``cnnkit/recipes``), reachable by name wherever a recipe path is accepted."""

from __future__ import annotations

from pathlib import Path

from cnnkit.errors import RecipeError


def recipes_dir() -> Path | None:
    """The folder of built-in recipes: installed package data first, then the source tree."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "recipes", package.parent / "recipes"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


def builtin_recipes() -> dict[str, Path]:
    """Built-in recipe name -> file, sorted by name."""
    folder = recipes_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_recipe(where: str | Path) -> Path:
    """A path as given if it exists, else the built-in recipe of that name (``lenet``)."""
    path = Path(where)
    if path.is_file():
        return path
    builtins = builtin_recipes()
    stem = path.stem if path.suffix in (".yaml", ".yml") and len(path.parts) == 1 else str(where)
    if stem in builtins:
        return builtins[stem]
    from cnnkit.layers import suggest

    hint = suggest(stem, builtins) if builtins else f" {stem!r}"
    raise RecipeError(f"no recipe file or built-in recipe named{hint}", where=str(where))
