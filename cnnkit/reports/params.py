"""``cnnkit params`` as data: parameters, MACs, FLOPs, all-ops, activations and training
memory per layer, the gates on them, and the ``--verify`` check against PyTorch and fvcore.

A recipe is counted by the pure analysis (no torch, pandas or fvcore unless ``verify``); a
torchvision/timm model by running the built module (torch, fvcore).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnkit.errors import BudgetExceeded, InputError

if TYPE_CHECKING:
    from cnnkit.analysis.costs import LayerCost
    from cnnkit.recipe import Recipe


def params_report(
    recipe: Recipe | str,
    *,
    batch: int = 1,
    dtype: str = "fp32",
    optimizer: str = "sgd",
    verify: bool = False,
) -> dict[str, Any]:
    """The ``cnnkit params --json`` document of ``recipe`` (a Recipe, or anything
    ``cnnkit params`` takes: a recipe file, a built-in name, ``torchvision:NAME``) for one
    batch of ``batch`` samples in ``dtype``, training with ``optimizer``. With ``verify`` its
    ``"verify"`` holds the check against the built module and fvcore (``check_verified``
    raises when it failed)."""
    check_batch(batch)
    check_choices(dtype, optimizer)
    recipe = _recipe(recipe)
    if recipe.graph is not None:
        from cnnkit.analysis.bounds import check_sizes

        check_sizes(recipe)
    if verify and recipe.graph is None:
        raise InputError(
            "--verify checks the recipe analysis against PyTorch; torchvision/timm models are "
            "already counted from the built module by fvcore"
        )
    doc = _document(recipe, _rows(recipe, batch, dtype), batch, dtype, optimizer)
    if verify:
        doc["verify"] = _verify(recipe).as_dict()
    return doc


def _recipe(recipe: Recipe | str) -> Recipe:
    if not isinstance(recipe, str):
        return recipe
    from cnnkit.targets import MODELS, resolve

    return resolve(recipe, accept=MODELS).require_recipe()


def check_batch(batch: int) -> None:
    """A batch this cnnkit can count (the tensor-size bound)."""
    from cnnkit.recipe.limits import MAX_TENSOR_ELEMENTS

    if batch > MAX_TENSOR_ELEMENTS:
        raise InputError(f"--batch: {batch:,} is more than the limit of {MAX_TENSOR_ELEMENTS:,}")
    if batch < 1:
        raise InputError(f"--batch: expected a positive integer, got {batch}")


def check_choices(dtype: str, optimizer: str) -> None:
    """A known element type and optimizer (the memory estimate's)."""
    from cnnkit.analysis.memory import DTYPE_BYTES, OPTIMIZER_STATES

    _check_choice("--dtype", dtype, DTYPE_BYTES)
    _check_choice("--optimizer", optimizer, OPTIMIZER_STATES)


def _check_choice(option: str, value: str, choices: dict[str, int]) -> None:
    if value not in choices:
        from cnnkit.layers import suggest

        raise InputError(f"{option}: unknown value{suggest(value, list(choices))}")


def layer_rows(doc: dict[str, Any]) -> list[LayerCost]:
    """The document's layer rows as ``LayerCost`` (for ``aggregate`` and the table)."""
    from cnnkit.analysis.costs import LayerCost

    return [
        LayerCost(
            r["name"],
            r["kind"],
            tuple(r["output"]),
            r["params"],
            r["trainable"],
            r["buffers"],
            r["macs"],
            r["ops"],
            r["activations"],
            r["activation_bytes"],
        )  # fmt: skip
        for r in doc["layers"]
    ]


def memory_warning(recipe: Recipe, doc: dict[str, Any]) -> str | None:
    """A warning when the training estimate exceeds what this machine has available: the
    analysis still stands, but ``cnnkit train`` would refuse (or run out of memory)."""
    from cnnkit.analysis.bounds import available_memory, largest_layer
    from cnnkit.analysis.memory import human_bytes

    have = available_memory()
    total = doc["memory"]["total"]
    if have is None or total <= have.bytes:
        return None
    where = (
        f"; the largest layer is {largest_layer(recipe, doc['batch'], 4)}" if recipe.graph else ""
    )
    return (
        f"training memory at --batch {doc['batch']} ({human_bytes(total)}) is more than "
        f"the {human_bytes(have.bytes)} of {have.what} on this machine{where}"
    )


def _rows(recipe: Recipe, batch: int, dtype: str) -> list[LayerCost]:
    if recipe.graph is not None:
        from cnnkit.analysis.costs import graph_costs

        return graph_costs(recipe.graph, batch, dtype)
    from cnnkit.measure.verify import external_costs

    _check_external_input(recipe, batch)
    return external_costs(recipe, batch, dtype)


def _check_external_input(recipe: Recipe, batch: int) -> None:
    """A torchvision/timm model is counted by running it on a batch: refuse, before it is
    built, an input over the tensor bound or a batch this machine cannot hold."""
    from cnnkit.analysis.bounds import available_memory
    from cnnkit.analysis.memory import human_bytes
    from cnnkit.layers._kind import prod
    from cnnkit.recipe.limits import MAX_TENSOR_ELEMENTS

    shape = "x".join(map(str, recipe.input_shape))
    elements = prod(recipe.input_shape)
    if elements > MAX_TENSOR_ELEMENTS:
        raise InputError(
            f"--input: {shape} is {elements:,} elements per sample, more than the limit of "
            f"{MAX_TENSOR_ELEMENTS:,} per tensor"
        )
    need, have = 4 * batch * elements, available_memory()
    if have is not None and need > have.bytes:
        raise InputError(
            f"--input/--batch: a batch of {batch} x {shape} alone needs {human_bytes(need)}, "
            f"more than the {human_bytes(have.bytes)} of {have.what}"
        )


def _verify(recipe: Recipe) -> Any:
    from cnnkit.analysis.costs import graph_costs
    from cnnkit.measure.verify import verify

    assert recipe.graph is not None
    return verify(recipe, graph_costs(recipe.graph, 1, "fp32"))


def _document(
    recipe: Recipe, rows: list[LayerCost], batch: int, dtype: str, optimizer: str
) -> dict[str, Any]:
    """The ``--json`` document (schema: docs/reference/json.md); the table shows the same data."""
    from cnnkit.analysis.costs import CONVENTION, ops_rules, total
    from cnnkit.analysis.memory import training_memory

    sums = total(rows)
    kept, basis = _kept_for_backward(recipe, sums, batch, dtype)
    memory = training_memory(
        trainable=sums.trainable,
        frozen=sums.params - sums.trainable + sums.buffers,
        activation_bytes=kept,
        dtype=dtype,
        optimizer=optimizer,
        activations_basis=basis,
    )
    ext = recipe.external
    totals = {k: v for k, v in sums.as_dict().items() if k not in ("name", "kind", "output")}
    return {
        "model": f"{ext.library}:{ext.name}" if ext else recipe.name,
        "source": "module+fvcore" if ext else "analysis",
        "input": list(recipe.input_shape),
        "output": list(recipe.graph.output_shape) if recipe.graph else list(sums.output),
        "batch": batch,
        "dtype": dtype,
        "convention": {**CONVENTION, "ops_rules": ops_rules() if not ext else None},
        "totals": totals,
        "memory": memory.as_dict(),
        "layers": [r.as_dict() for r in rows],
    }


def _kept_for_backward(recipe: Recipe, sums: LayerCost, batch: int, dtype: str) -> tuple[int, str]:
    """Activation bytes kept for backward and how they were counted: by each kind's
    saved-for-backward rule for a recipe graph; for torchvision/timm modules (no rules),
    the input plus every leaf module's output."""
    from cnnkit.analysis.costs import input_elements
    from cnnkit.analysis.memory import DTYPE_BYTES, saved_activation_bytes

    if recipe.graph is not None:
        return saved_activation_bytes(recipe.graph, batch, dtype), "saved_for_backward"
    outputs = sums.activations + input_elements(recipe.input_shape, batch)
    return outputs * DTYPE_BYTES[dtype], "leaf_module_outputs"


def check_budgets(
    doc: dict[str, Any],
    *,
    max_params: float | None = None,
    max_macs: float | None = None,
    max_memory: float | None = None,
    memory_text: str | None = None,
) -> None:
    """A CI gate: one ``BudgetExceeded`` (exit 1) naming every budget exceeded and by how
    much. ``memory_text`` is the budget as typed (``512MiB``), for the message."""
    from cnnkit.analysis.memory import human_bytes

    budgets = {"params": max_params, "macs": max_macs, "memory": max_memory}
    values = {
        "params": doc["totals"]["params"],
        "macs": doc["totals"]["macs"],
        "memory": doc["memory"]["total"],
    }
    failed = []
    for key, budget in budgets.items():
        value = values[key]
        if budget is None or value is None or value <= budget:
            continue
        ratio = f" ({value / budget:.1f}x)" if budget else ""
        if key == "memory":
            typed = memory_text if memory_text is not None else f"{_int(budget)}"
            failed.append(
                f"training memory {value:,} B ({human_bytes(value)}) exceeds --max-memory "
                f"{typed} ({_int(budget):,} B) by {_int(value - budget):,} B{ratio}"
            )
        else:
            label = "params" if key == "params" else "MACs"
            failed.append(
                f"{label} {value:,} exceeds --max-{key} {_int(budget):,} by "
                f"{_int(value - budget):,}{ratio}"
            )
    if failed:
        raise BudgetExceeded("; ".join(failed))


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def check_verified(doc: dict[str, Any]) -> None:
    """Exit-1 ``VerificationFailed`` when ``--verify`` found a difference nobody explained."""
    checked = doc.get("verify")
    if checked is None or checked["ok"]:
        return
    from cnnkit.measure.verify import VerificationFailed

    bad = [d for d in checked["differences"] if not d["explained"]]
    first = bad[0]
    raise VerificationFailed(
        f"--verify: {len(bad)} unexplained difference(s), first: {first['name']} "
        f"{first['quantity']} {first['analysis']:,} vs {first['reference']:,} ({first['oracle']})"
    )
