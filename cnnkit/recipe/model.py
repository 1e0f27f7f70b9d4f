"""The ``Recipe``: a validated recipe file, and the loader that reads, overrides and checks it.

Sections: ``input`` (shape without batch), ``model`` (the graph, or ``torchvision:``/``timm:``
for those libraries' models), and ``data``/``train``, kept as raw mappings for the commands
that define them. Any other top-level key is an error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from cnnkit.layers import suggest
from cnnkit.recipe import limits
from cnnkit.recipe.expand import Expander
from cnnkit.recipe.graph import INPUT, Graph, assemble
from cnnkit.recipe.source import Path, Source, read_yaml
from cnnkit.recipe.types import STRUCTURES, Block, check_init
from cnnkit.validation import SEED_LIMIT, Check, integer, number

SECTIONS = ("input", "model", "data", "train")
MODEL_KEYS = (
    "layers",
    "blocks",
    "init",
    "seed",
    "depth",
    "width",
    "torchvision",
    "timm",
    "kwargs",
)


@dataclass(frozen=True)
class External:
    """A model from another library: ``model: {torchvision: resnet50, kwargs: {...}}``."""

    library: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``graph`` is None exactly when ``external`` is set.

    ``data`` and ``train`` are the raw sections (None when absent); the commands that use
    them validate them. ``raw`` and ``source`` keep what was read, for ``apply_overrides``.
    """

    name: str
    input_shape: tuple[int, ...]
    graph: Graph | None
    external: External | None
    init: str
    seed: int
    data: dict[str, Any] | None
    train: dict[str, Any] | None
    description: str
    raw: dict[str, Any] = field(repr=False)
    source: Source = field(repr=False)
    path: str | None = None


def load_recipe(where: str | FilePath, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (or a built-in recipe by name, e.g. ``"lenet"``), apply
    ``key.path=value`` overrides, validate it and expand its model into a graph."""
    from cnnkit.recipe.builtin import find_recipe

    path = find_recipe(where)
    try:
        if path.is_file() and path.stat().st_size > limits.MAX_FILE_BYTES:
            raise OSError(f"larger than {limits.MAX_FILE_BYTES:,} bytes, the limit for a recipe")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        from cnnkit.errors import RecipeError

        raise RecipeError(f"cannot read recipe: {err}", where=str(where)) from None
    return recipe_from_text(text, str(where), overrides, path=str(path))


def recipe_from_text(
    text: str, name: str = "<recipe>", overrides: list[str] | tuple[str, ...] = (), path=None
) -> Recipe:
    """Validate recipe ``text``; ``name`` is what error messages call the file."""
    data, source = read_yaml(text, name)
    if overrides:
        from cnnkit.recipe.overrides import apply

        data = apply(data, source, overrides)
    return validate(data, source, _description(text), path)


def apply_overrides(recipe: Recipe, overrides: list[str] | tuple[str, ...]) -> Recipe:
    """A new recipe with ``key.path=value`` pairs (values typed as YAML) applied and the
    whole recipe validated again."""
    from cnnkit.recipe.overrides import apply

    source = Source(recipe.source.name, dict(recipe.source.lines))
    data = apply(copy.deepcopy(recipe.raw), source, overrides)
    return validate(data, source, recipe.description, recipe.path)


def validate(data: Any, source: Source, description: str = "", path=None) -> Recipe:
    if not isinstance(data, dict):
        raise source.error((), f"expected a mapping with sections {', '.join(SECTIONS)}")
    for key in data:
        if key in MODEL_KEYS:
            raise source.error(
                (key,),
                f"unknown section {key!r}: it goes under model: (model.{key}); "
                f"the sections are {', '.join(SECTIONS)}",
            )
        if key not in SECTIONS:
            raise source.error((key,), f"unknown section{suggest(str(key), SECTIONS)}")
    for key in ("input", "model"):
        if key not in data:
            raise source.error((), f"missing section {key!r}")
    shape = _input_shape(data["input"], source)
    model = data["model"]
    if not isinstance(model, dict):
        raise source.error(("model",), "expected a mapping with 'layers' (or 'torchvision:')")
    for key in model:
        if key not in MODEL_KEYS:
            raise source.error(("model", key), f"unknown key{suggest(str(key), MODEL_KEYS)}")
    init = check_init(model.get("init", "default"), source, ("model", "init"))
    seed = _checked(integer(0, SEED_LIMIT), model.get("seed", 0), source, ("model", "seed"))
    sections = {}
    for key in ("data", "train"):
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise source.error((key,), f"expected a mapping, got {value!r}")
        sections[key] = value
    external = _external(model, source)
    graph = None if external else _graph(model, shape, source, None if init == "default" else init)
    stem = FilePath(source.name).stem
    return Recipe(
        stem,
        shape,
        graph,
        external,
        init,
        seed,
        sections["data"],
        sections["train"],
        description,
        data,
        source,
        path,
    )


def _input_shape(value: Any, source: Source) -> tuple[int, ...]:
    if isinstance(value, str):
        from cnnkit.errors import InputError
        from cnnkit.parsing import parse_ints

        try:
            value = list(parse_ints("input", value))
        except InputError as err:
            raise source.error(("input",), err.message.removeprefix("input: ")) from None
    ok = isinstance(value, list) and 1 <= len(value) <= 4
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise source.error(
            ("input",), f"expected a shape like [1, 32, 32] (channels, *spatial), got {value!r}"
        )
    return tuple(value)


def _checked(check: Check, value: Any, source: Source, path: Path) -> Any:
    """``check(value)``, its ``expected ...`` error placed at ``file:line: path``."""
    try:
        return check(value)
    except ValueError as err:
        raise source.error(path, str(err)) from None


def _external(model: dict[str, Any], source: Source) -> External | None:
    libraries = [k for k in ("torchvision", "timm") if k in model]
    if not libraries:
        if "kwargs" in model:
            raise source.error(("model", "kwargs"), "kwargs apply to torchvision:/timm: models")
        return None
    if len(libraries) > 1 or "layers" in model or "blocks" in model:
        raise source.error(
            ("model", libraries[0]), "give either layers or one of torchvision:/timm:, not both"
        )
    name = model[libraries[0]]
    if not isinstance(name, str) or not name:
        raise source.error(("model", libraries[0]), f"expected a model name, got {name!r}")
    kwargs = model.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise source.error(("model", "kwargs"), f"expected a mapping, got {kwargs!r}")
    return External(libraries[0], name, kwargs)


def _graph(model: dict[str, Any], shape: tuple[int, ...], source: Source, init) -> Graph:
    if "layers" not in model:
        raise source.error(("model",), "missing key 'layers' (or torchvision:/timm:)")
    scale = number(0, limits.MAX_SCALE, open_low=True)
    depth = _checked(scale, model.get("depth", 1), source, ("model", "depth"))
    width = _checked(scale, model.get("width", 1), source, ("model", "width"))
    blocks = _blocks(model.get("blocks"), source)
    expander = Expander(source, blocks, init, depth, width, shape)
    output = expander.sequence(model["layers"], ("model", "layers"), "", INPUT, None)
    if not expander.specs:
        raise source.error(
            ("model", "layers"), "the model has no layers (every repeat has times: 0)"
        )
    return assemble(expander.specs, output, shape, source)


def _blocks(value: Any, source: Source) -> dict[str, Block]:
    from cnnkit.layers import ALIASES

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise source.error(("model", "blocks"), "expected a mapping of block name -> definition")
    blocks = {}
    for name, spec in value.items():
        path = ("model", "blocks", name)
        if name in ALIASES or name in STRUCTURES:
            raise source.error(path, f"block name {name!r} is already a layer kind or structure")
        if not isinstance(spec, dict) or "layers" not in spec:
            raise source.error(path, "expected a mapping with 'layers' (and optional 'args')")
        for key in spec:
            if key not in ("args", "layers"):
                raise source.error(
                    (*path, key), f"unknown key{suggest(str(key), ['args', 'layers'])}"
                )
        args = spec.get("args") or {}
        if not isinstance(args, dict):
            raise source.error((*path, "args"), "expected a mapping of argument -> default")
        if "in_channels" in args:
            raise source.error(
                (*path, "args", "in_channels"),
                "in_channels is reserved: inside a block it is the channel count of the "
                "block's input; choose another argument name",
            )
        blocks[str(name)] = Block(str(name), args, spec["layers"], (*path, "layers"))
    return blocks


def _description(text: str) -> str:
    """The first comment line of the file: built-in recipes name their paper there."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""
