"""One resolver for every target a command takes.

A target is what the user types after a command: a recipe file, a built-in recipe name
(``resnet50``), ``torchvision:NAME`` / ``timm:NAME``, a run folder or a checkpoint file.
``resolve`` tells them apart once, loads the recipe with ``--set`` and ``--input`` applied,
and refuses a kind the command does not take in one line naming what was given and what
is accepted. Pure: torch is imported only to read a checkpoint (``Target.load_checkpoint``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from cnnkit.recipe import Recipe

RECIPE, BUILTIN, EXTERNAL, RUN, CHECKPOINT = "recipe", "builtin", "external", "run", "checkpoint"
ALL = frozenset({RECIPE, BUILTIN, EXTERNAL, RUN, CHECKPOINT})
RECIPES = frozenset({RECIPE, BUILTIN})  # what defines a model by its layers
MODELS = RECIPES | {EXTERNAL}  # anything that describes a network, without a run behind it
TRAINED = frozenset({RUN, CHECKPOINT})  # what holds trained weights

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
RUN_RECIPES = ("recipe.yaml", "resolved_recipe.yaml", "recipe.yml")  # first found wins
EXTERNAL_INPUT = (3, 224, 224)  # torchvision/timm models have no input of their own

_EXTERNAL = re.compile(r"^(torchvision|timm):(\S+)$")
_DIMS = re.compile(r"^\d+(x\d+)+$")
_GIVEN = {  # kind -> how an error message names what was given
    RECIPE: "a recipe file",
    BUILTIN: "a built-in recipe name",
    EXTERNAL: "a torchvision/timm model",
    RUN: "a folder",
    CHECKPOINT: "a checkpoint file",
}
_TAKES = {**_GIVEN, EXTERNAL: "torchvision:NAME / timm:NAME", RUN: "a run folder"}


@dataclass(frozen=True)
class Target:
    """A resolved target. ``recipe`` is the (overridden) recipe; for a run folder, the
    run's recipe.yaml when present; for a checkpoint file, None (it is inside the file:
    ``load_checkpoint``). ``path`` is the recipe file, run folder or checkpoint file
    (None for built-in and torchvision/timm names); ``checkpoint`` the weights a run folder
    or checkpoint file offers (best.pt, else last.pt; None when there are none)."""

    kind: str
    spec: str
    recipe: Recipe | None
    path: Path | None
    checkpoint: Path | None = None

    @property
    def name(self) -> str:
        """What reports call the target: the run folder's name, the ``library:model`` typed,
        else the recipe's name."""
        if self.kind in (RUN, CHECKPOINT) and self.path is not None:
            return self.path.name
        if self.kind == EXTERNAL or self.recipe is None:
            return self.spec
        return self.recipe.name

    @property
    def external(self) -> Any:
        """The torchvision/timm model a recipe names (``External``), or None for layers."""
        return None if self.recipe is None else self.recipe.external

    def require_recipe(self) -> Recipe:
        """The recipe, or one line saying a run folder has none."""
        if self.recipe is None:
            if self.kind == RUN:
                raise InputError(
                    f"{self.spec}: a folder, but no recipe.yaml in it (is it a run folder?)"
                )
            raise InputError(f"{self.spec}: {_GIVEN[self.kind]}, which holds no recipe file")
        return self.recipe

    def load_checkpoint(self) -> tuple[dict[str, Any], Recipe]:
        """Read the checkpoint (torch) and the recipe stored in it; every failure is one
        ``CheckpointError``."""
        if self.checkpoint is None:
            raise CheckpointError("no best.pt or last.pt in this folder", where=self.spec)
        from cnnkit.recipe import recipe_from_text
        from cnnkit.train.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(self.checkpoint)
        return checkpoint, recipe_from_text(checkpoint["recipe"], f"{self.checkpoint}:recipe")


def resolve(
    spec: str,
    *,
    accept: Collection[str] = ALL,
    overrides: Sequence[str] = (),
    input_text: str | None = None,
    with_recipe: bool = True,
) -> Target:
    """The target ``spec`` names, if its kind is in ``accept``. ``overrides`` are ``--set``
    values, ``input_text`` an ``--input`` (H, HxW or CxHxW; one size means every spatial
    axis). ``with_recipe=False`` leaves a run folder's recipe.yaml unread (evaluation
    needs only its checkpoint)."""
    unknown = set(accept) - ALL
    if unknown:
        raise ValueError(f"unknown target kinds {sorted(unknown)}")
    if not spec.strip():  # as a Path, '' is '.': the current folder
        raise InputError(f"an empty name; give {_accepted(accept)}")
    kind = _kind(spec, accept)
    if kind not in accept:
        raise InputError(f"{_GIVEN[kind]}, but this command takes {_accepted(accept)}", where=spec)
    if kind == EXTERNAL:
        return Target(kind, spec, _external(spec, overrides, input_text), None)
    if kind in RECIPES:
        path = Path(spec) if kind == RECIPE else None
        return Target(kind, spec, _recipe(spec, overrides, input_text), path)
    if kind == CHECKPOINT:
        if not Path(spec).is_file():
            raise CheckpointError("no such checkpoint file", where=spec)
        return Target(kind, spec, None, Path(spec), Path(spec))
    return _run(spec, overrides, input_text, with_recipe)


def _kind(spec: str, accept: Collection[str]) -> str:
    """Which kind ``spec`` is: an existing file or folder first, then the names. A name that
    is nothing yet is a recipe (whose loader says no such file or built-in name), unless
    the command takes only runs or checkpoints."""
    from cnnkit.recipe import builtin_recipes

    path = Path(spec)
    if _EXTERNAL.match(spec) and not path.is_file():
        return EXTERNAL
    if path.is_dir():
        return RUN
    if path.is_file():
        if path.suffix in CHECKPOINT_SUFFIXES or not RECIPES & set(accept):
            return CHECKPOINT
        return RECIPE
    stem = path.stem if path.suffix in (".yaml", ".yml") and len(path.parts) == 1 else spec
    if stem in builtin_recipes() or RECIPES & set(accept):
        return BUILTIN
    if CHECKPOINT in accept:
        return CHECKPOINT
    raise CheckpointError("not a run folder: no such folder", where=spec)


def _accepted(accept: Collection[str]) -> str:
    names = [_TAKES[k] for k in (RECIPE, BUILTIN, EXTERNAL, RUN, CHECKPOINT) if k in accept]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _recipe(where: str | Path, overrides: Sequence[str], input_text: str | None) -> Recipe:
    """A recipe file or built-in recipe; ``--input`` becomes one more ``--set input=[...]``,
    so its errors point where the other overrides' do."""
    from cnnkit.parsing import parse_recipe_input
    from cnnkit.recipe import load_recipe

    loaded = load_recipe(where, list(overrides))
    if input_text is None:
        return loaded
    shape = parse_recipe_input("--input", input_text, loaded.input_shape)
    return load_recipe(where, [*overrides, f"input=[{', '.join(map(str, shape))}]"])


def _external(spec: str, overrides: Sequence[str], input_text: str | None) -> Recipe:
    """A one-line recipe for a torchvision/timm model at ``--input`` (default 3x224x224)."""
    from cnnkit.parsing import parse_recipe_input
    from cnnkit.recipe import recipe_from_text

    match = _EXTERNAL.match(spec)
    assert match is not None
    default = "x".join(map(str, EXTERNAL_INPUT))
    shape = parse_recipe_input("--input", input_text or default, EXTERNAL_INPUT)
    text = json.dumps({"input": list(shape), "model": {match.group(1): match.group(2)}})
    return recipe_from_text(text, spec, list(overrides))


def _run(spec: str, overrides: Sequence[str], input_text: str | None, with_recipe: bool) -> Target:
    """A run folder: its recipe (the first of ``RUN_RECIPES`` present) and its weights."""
    from cnnkit.train import runs

    folder = Path(spec)
    weights = next((folder / n for n in (runs.BEST, runs.LAST) if (folder / n).is_file()), None)
    recipe = None
    if with_recipe:
        found = next((folder / n for n in RUN_RECIPES if (folder / n).is_file()), None)
        recipe = None if found is None else _recipe(found, overrides, input_text)
    return Target(RUN, spec, recipe, folder, weights)


def layers_recipe(text: str, input_text: str | None) -> Recipe:
    """A recipe from ``cnnkit rf --layers "conv k=3; maxpool k=2"``: each item becomes a
    recipe layer; conv ``out`` defaults to the input's channel count (channels do not
    change receptive fields). ``--input`` defaults to 224x224."""
    from cnnkit.parsing import parse_ints, parse_layer_list
    from cnnkit.recipe.model import validate
    from cnnkit.recipe.source import Source

    items = parse_layer_list("--layers", text)
    wants = [len(v.split("x")) for _, args in items for v in args.values() if _DIMS.match(v)]
    shape = parse_ints("--input", input_text or "224x224")
    dims = max(wants) if wants else (len(shape) if len(shape) <= 2 else len(shape) - 1)
    if len(shape) == dims:
        shape = (1, *shape)
    elif len(shape) != dims + 1:
        raise InputError(f"--input: {input_text} does not fit {dims}-D layers")
    source = Source("--layers")
    model_layers: list[Any] = []
    for number, (kind, args) in enumerate(items):
        typed = {key: _layer_value(value) for key, value in args.items()}
        if kind in ("conv", "convolution", "convtranspose", "deconv") and not {
            "out",
            "out_channels",
            "filters",
            "c",
        } & set(typed):
            typed["out"] = shape[0]
        model_layers.append({kind: typed or None})
        source.lines[("model", "layers", number)] = f"--layers item {number + 1} ({kind})"
    data = {"input": list(shape), "model": {"layers": model_layers}}
    return validate(data, source, "layers from --layers")


def _layer_value(value: str) -> Any:
    """``3x5`` -> [3, 5]; else the value typed as YAML (a string when it is not YAML)."""
    import yaml

    from cnnkit.recipe.source import load_value

    if _DIMS.match(value):
        return [int(v) for v in value.split("x")]
    try:
        return load_value(value)
    except yaml.YAMLError:
        return value
