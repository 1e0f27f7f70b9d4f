"""Recipe -> ``Plan``: the one place where the recipe layer meets training.

It validates the recipe's ``data:`` and ``train:`` sections (errors carry the recipe's
``file:line: key``), and writes the fully resolved recipe that a run folder and its
checkpoints keep, so ``--resume`` and ``cnnkit eval`` rebuild exactly the same model and data.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from cnnkit.recipe import Recipe, apply_overrides, load_recipe, recipe_from_text
from cnnkit.train.config import (
    DataConfig,
    TrainConfig,
    check_monitor,
    check_train_task,
    parse_data,
    parse_train,
    to_plain,
)
from cnnkit.train.experiment import Plan


def load_with_overrides(where: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """``load_recipe`` with ``--set``, where ``--set train.x=..`` works even when the recipe has
    no ``train:`` (or ``data:``) section yet: the missing section starts out empty."""
    recipe = load_recipe(where)
    if not overrides:
        return recipe
    raw = dict(recipe.raw)
    for section in ("data", "train"):
        if raw.get(section) is None and any(o.startswith(f"{section}.") for o in overrides):
            raw[section] = {}
    return apply_overrides(dataclasses.replace(recipe, raw=raw), list(overrides))


def sections(recipe: Recipe) -> tuple[DataConfig, TrainConfig]:
    """The validated ``data:`` and ``train:`` sections (defaults where absent)."""
    data, train = parse_data(recipe.data, recipe.source), parse_train(recipe.train, recipe.source)
    check_train_task(train, data, recipe.source)
    check_monitor(data, train, recipe.source)
    return data, train


def resolved_text(recipe: Recipe, data: DataConfig, train: TrainConfig, note: str) -> str:
    """The recipe as YAML with every data/train default written out."""
    import yaml

    raw: dict[str, Any] = dict(recipe.raw)
    raw["data"], raw["train"] = to_plain(data), to_plain(train)
    body = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100)
    return f"# {note}\n{body}"


def plan_from_recipe(recipe: Recipe, note: str, name: str | None = None) -> Plan:
    """A runnable ``Plan``: validated sections, resolved text, and a builder for the model."""
    from cnnkit.model.build import build

    data, train = sections(recipe)
    check_training_memory(recipe, train)
    return Plan(
        name=name or recipe.name,
        recipe_text=resolved_text(recipe, data, train, note),
        input_shape=tuple(recipe.input_shape),
        data=data,
        train=train,
        build=lambda: build(recipe),
        source=recipe.source.name,
    )


def check_training_memory(recipe: Recipe, train: TrainConfig) -> None:
    """Before anything is built: refuse a model no machine trains (``check_sizes``), or one
    whose training estimate at ``train.batch_size`` (per process under torchrun) exceeds the
    memory of the device it would train on (a CUDA device's total memory; the host's available
    memory for the CPU and MPS, and for the weights, which are built on the host first)."""
    from cnnkit.analysis.bounds import (
        Available,
        available_memory,
        check_sizes,
        largest_layer,
        memory_message,
        train_estimate,
    )
    from cnnkit.errors import RecipeError

    if recipe.graph is None:
        return
    check_sizes(recipe)
    batch = max(1, train.batch_size // max(1, int(os.environ.get("WORLD_SIZE", "1") or 1)))
    memory = train_estimate(recipe, batch, train.optimizer, train.momentum, train.amp)
    host = available_memory()
    device = _cuda_memory(train.device)
    need, have = memory.total, device or host
    if device is not None and host is not None and memory.weights > host.bytes:
        what = f"{host.what} on the host, where the weights are built first"
        need, have = memory.weights, Available(host.bytes, what)
    if have is not None and need > have.bytes:
        where = largest_layer(recipe, batch, memory.bytes_per_element)
        raise RecipeError(memory_message(memory, have, "train.batch_size", batch, where))
    _check_evaluation(recipe, train, memory.weights, device or host)


def _check_evaluation(recipe: Recipe, train: TrainConfig, weights: int, have: Any) -> None:
    """Evaluation at ``train.eval_batch_size`` (per process) must fit as well."""
    from cnnkit.analysis.bounds import evaluation_bytes, evaluation_message, largest_layer
    from cnnkit.errors import RecipeError

    batch = max(1, train.eval_batch_size // max(1, int(os.environ.get("WORLD_SIZE", "1") or 1)))
    need = evaluation_bytes(recipe, batch, weights)
    if have is not None and need > have.bytes:
        where = largest_layer(recipe, batch, 4)
        raise RecipeError(evaluation_message(need, have, batch, where))


def _cuda_memory(device: str) -> Any:
    """A CUDA device's total memory when training would run there (None otherwise)."""
    import torch

    from cnnkit.analysis.bounds import Available

    if device not in ("auto", "cuda") or not torch.cuda.is_available():
        return None
    index = int(os.environ.get("LOCAL_RANK", "0") or 0) % max(1, torch.cuda.device_count())
    total = torch.cuda.get_device_properties(index).total_memory
    return Available(total, f"memory of cuda:{index}")


def recipe_of_run(text: str, where: str) -> Recipe:
    """Read back a resolved recipe stored in a run folder or a checkpoint."""
    return recipe_from_text(text, where)


def plan_of_run(run_dir: Path) -> Plan:
    """The plan a run folder was started with: from ``last.pt``, else its ``recipe.yaml``
    (a run stopped before its first checkpoint), with the run's own recipe text byte for byte."""
    from cnnkit.errors import CheckpointError
    from cnnkit.train import runs
    from cnnkit.train.checkpoint import load_checkpoint

    if (run_dir / runs.LAST).is_file():
        checkpoint = load_checkpoint(run_dir / runs.LAST)
        text, name = checkpoint["recipe"], checkpoint["name"]
    else:
        from cnnkit.recipe.limits import MAX_FILE_BYTES

        path = run_dir / runs.RECIPE
        try:
            if path.stat().st_size > MAX_FILE_BYTES:  # read_yaml bounds it too, after reading
                raise OSError(f"larger than {MAX_FILE_BYTES:,} bytes, the limit for a recipe")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"cannot read the run's recipe: {err}", where=str(path)) from None
        name = runs.name_of(text, run_dir)
    recipe = recipe_of_run(text, str(run_dir / runs.RECIPE))
    plan = plan_from_recipe(recipe, "", name=name)
    return dataclasses.replace(plan, recipe_text=text)
