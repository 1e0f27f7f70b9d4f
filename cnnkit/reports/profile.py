"""``cnnkit profile``'s document: latency, throughput and memory per batch size, and per layer.

The timing itself is ``cnnkit.measure.profiling``; this module chooses what is timed (one
fresh model per batch size, the per-layer pass at the largest batch that ran), relates times
to the analytic MAC count, and returns the ``--json`` document as plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnkit.errors import InputError
from cnnkit.recipe import Recipe

CONVENTION = (
    "MACs are the analytic conv + linear multiply-accumulates per sample (bias excluded); a "
    "training step is counted as 3x the forward MACs (forward, input gradient, weight gradient)"
)
MODES = ("infer", "train")
DTYPES = ("fp32", "bf16", "fp16")


def check_options(
    mode: str, dtype: str, warmup: int, iters: int, compile_: bool, layers: bool
) -> None:
    """Refuse settings that cannot be measured, before any model is loaded or built."""
    _check_choice("--mode", mode, MODES)
    _check_choice("--dtype", dtype, DTYPES)
    if warmup < 0:
        raise InputError(f"--warmup: expected a non-negative integer, got {warmup}")
    if iters < 1:
        raise InputError(f"--iters: expected a positive integer, got {iters}")
    if compile_ and layers:
        raise InputError("--layers times an eager model; drop --compile to time layers")


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{option}: expected one of {', '.join(choices)}, got {value!r}")


def profile_report(
    recipe: Recipe | str,
    *,
    overrides: Sequence[str] = (),
    name: str | None = None,
    batches: Sequence[int] = (1, 8, 32),
    device: str = "auto",
    mode: str = "infer",
    dtype: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    warmup: int = 3,
    iters: int = 10,
    layers: bool = False,
) -> dict[str, Any]:
    """``cnnkit profile --json``'s document: ``recipe``'s model timed end to end at every batch
    size (per layer too with ``layers``). ``recipe`` is a Recipe or a target ``cnnkit profile``
    takes (file, built-in or torchvision name, run folder), loaded with ``overrides``."""
    import torch

    from cnnkit.measure.profiling import Settings, device_name, memory_of, resolve_device

    check_options(mode, dtype, warmup, iters, compile, layers)
    recipe, name = _target(recipe, overrides, name)
    batches = tuple(batches)
    device = resolve_device(device)
    notes: list[str] = []
    if channels_last and len(recipe.input_shape) != 3:
        notes.append("--channels-last applies to 4-D (N, C, H, W) inputs only: ignored")
        channels_last = False
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    settings = Settings(device, mode, dtype, channels_last, compile, warmup, iters)
    vocab = _vocab(recipe)
    _check_batches(recipe.input_shape, batches, 8 if vocab else 4, memory_of(device))
    macs, per_node = _analytic(recipe)
    rows = _batch_rows(recipe, settings, batches, vocab, macs, notes)
    layer_report = (
        _layer_report(recipe, settings, rows[-1], vocab, per_node) if layers and rows else None
    )
    return {
        "model": name,
        "input": list(recipe.input_shape),
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "mode": mode,
        "dtype": dtype,
        "channels_last": channels_last,
        "compile": compile,
        "warmup": warmup,
        "iters": iters,
        "macs_per_sample": macs,
        "convention": CONVENTION,
        "batches": rows,
        "layers": layer_report,
        "notes": notes,
    }


def _target(recipe: Recipe | str, overrides: Sequence[str], name: str | None) -> tuple[Recipe, str]:
    """The recipe a target names (what ``cnnkit profile TARGET`` takes) and its name;
    ``overrides`` apply to a target only (a Recipe is already loaded: refused, not ignored)."""
    if not isinstance(recipe, str):
        if overrides:
            raise ValueError("overrides apply to a target name or path, not to a loaded Recipe")
        return recipe, name or recipe.name
    from cnnkit.targets import MODELS, RUN, resolve

    target = resolve(recipe, accept=MODELS | {RUN}, overrides=overrides)
    return target.require_recipe(), name or target.name


def _factor(settings: Any) -> int:
    """MACs per sample and step: a training step is counted as three forward passes."""
    return 3 if settings.mode == "train" else 1


def _batch_rows(
    recipe: Recipe,
    settings: Any,
    batches: tuple[int, ...],
    vocab: int | None,
    macs: int | None,
    notes: list[str],
) -> list[dict[str, Any]]:
    """One row per batch size, each on a freshly built model; running out of memory ends the
    sweep with a note (larger batches would too), any other failure is the user's input."""
    import torch

    from cnnkit.measure.profiling import end_to_end, prepare
    from cnnkit.model.build import build

    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    rows = []
    for b in batches:
        model = prepare(build(recipe), settings)
        try:
            result = end_to_end(model, recipe.input_shape, b, settings, vocab)
        except out_of_memory:
            notes.append(f"batch {b}: out of memory on {settings.device}; larger batches skipped")
            break
        except RuntimeError as err:
            raise InputError(
                f"{settings.mode} at batch {b} on {settings.device} with {settings.dtype} "
                f"failed: {err}"
            ) from None
        rate = None if macs is None else macs * _factor(settings) * b / result.median
        rows.append(
            {
                "batch": b,
                "median_ms": result.median * 1e3,
                "p90_ms": result.p90 * 1e3,
                "images_per_s": result.images_per_s,
                "peak_memory_bytes": result.peak_memory,
                "memory_kind": result.memory_kind,
                "achieved_macs_per_s": rate,
            }
        )
        del model
    return rows


def _layer_report(
    recipe: Recipe,
    settings: Any,
    last: dict[str, Any],
    vocab: int | None,
    per_node: dict[str, int],
) -> dict[str, Any]:
    """Every leaf module timed at the largest batch that ran end to end (``last``)."""
    from cnnkit.measure.profiling import per_layer, prepare
    from cnnkit.model.build import build

    b = last["batch"]
    timed = per_layer(prepare(build(recipe), settings), recipe.input_shape, b, settings, vocab)
    total = sum(t.total for t in timed)
    rows = []
    for t in timed:
        macs = per_node.get(t.name)
        rows.append(
            {
                "name": t.name,
                "kind": t.kind,
                "output": list(t.output),
                "forward_ms": t.forward * 1e3,
                "backward_ms": None if t.backward is None else t.backward * 1e3,
                "total_ms": t.total * 1e3,
                "share": t.total / total if total else 0.0,
                "macs": macs,
                "achieved_macs_per_s": None
                if macs in (None, 0) or t.total == 0
                else macs * _factor(settings) * b / t.total,
            }
        )
    ranked = sorted(rows, key=lambda r: r["total_ms"], reverse=True)
    return {
        "batch": b,
        "sum_ms": total * 1e3,
        "end_to_end_ms": last["median_ms"],
        "slowest": [r["name"] for r in ranked[:5]],
        "layers": rows,
    }


def _check_batches(
    shape: tuple[int, ...], batches: tuple[int, ...], item: int, memory: int | None
) -> None:
    """Refuse a batch whose random input alone is larger than the device's whole memory:
    torch would fail with an allocator message, or overflow (--batch 1e30) as a TypeError."""
    from cnnkit.analysis.memory import human_bytes

    per_sample = item
    for size in shape:
        per_sample *= size
    for b in batches:
        if memory is not None and b * per_sample > memory:
            raise InputError(
                f"--batch {b}: one input batch of {b:,} x {'x'.join(map(str, shape))} needs "
                f"{human_bytes(b * per_sample)}, more than the {human_bytes(memory)} this "
                "device has in all"
            )


def _analytic(recipe: Recipe) -> tuple[int | None, dict[str, int]]:
    """Analytic MACs per sample, in all and per node (none for an external model)."""
    if recipe.graph is None:
        return None, {}
    from cnnkit.analysis import node_counts

    per_node = {name: c.macs for name, c in node_counts(recipe.graph).items()}
    return sum(per_node.values()), per_node


def _vocab(recipe: Recipe) -> int | None:
    """Token ids must stay below the smallest vocabulary of an embedding fed by the input."""
    graph = recipe.graph
    if graph is None:
        return None
    vocabs = [n.args["vocab"] for n in graph.nodes if n.kind == "embedding" and "input" in n.inputs]
    return min(vocabs) if vocabs else None
