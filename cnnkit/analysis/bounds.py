"""Whether a recipe's model can be allocated at all, and whether training it fits here.

Two rules, both checked on the analysis (plain ints) before anything is built:

- a bound no real network reaches, the same on every machine (``MAX_TENSOR_ELEMENTS`` in
  ``cnnkit.recipe.limits``): one layer's output for one sample, or one layer's parameters, holds
  at most 2^34 elements (64 GiB in fp32; VGG-16's largest weight has 1.0e8, ResNet-50's largest
  activation 8.0e5 per sample). Beyond it a recipe is refused by every command that analyses it
  as a network to build (``recipes``, ``params``, ``train``, ``eval``, ``profile``);
- the training-memory estimate (``cnnkit.analysis.memory``) against the memory this machine has
  available: ``train`` refuses when the estimate alone exceeds it, ``recipes`` and ``params``
  warn. The estimate leaves out workspaces and the allocator's caching, so it is a lower bound:
  a refusal is never a false alarm, while a run that passes may still need more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cnnkit.analysis.counts import node_counts
from cnnkit.analysis.memory import TrainingMemory, human_bytes
from cnnkit.errors import RecipeError
from cnnkit.layers._kind import prod
from cnnkit.recipe import Recipe
from cnnkit.recipe.limits import MAX_TENSOR_ELEMENTS


def check_sizes(recipe: Recipe) -> None:
    """Refuse a layer whose output (one sample) or parameters exceed the tensor bound."""
    graph = recipe.graph
    if graph is None:
        return
    if (n := prod(graph.input_shape)) > MAX_TENSOR_ELEMENTS:
        raise _too_big(recipe.source.locate(("input",)) + ": input", "", n, graph.input_shape)
    counts = node_counts(graph)
    for node in graph.nodes:
        label = f"{node.where} ({node.name}, {node.kind})"
        if (n := prod(node.shape)) > MAX_TENSOR_ELEMENTS:
            raise _too_big(label, "its output", n, node.shape)
        c = counts[node.name]
        if (n := c.params + c.buffers) > MAX_TENSOR_ELEMENTS:
            raise _too_big(label, "its parameters", n, None)


def _too_big(where: str, what: str, n: int, shape: tuple[int, ...] | None) -> RecipeError:
    sizes = "" if shape is None else " x ".join(map(str, shape)) + " = "
    per = " per sample" if shape is not None else ""
    lead = f"{what}: " if what else ""
    return RecipeError(
        f"{lead}{sizes}{n:,} elements{per}, more than the limit of {MAX_TENSOR_ELEMENTS:,} "
        f"elements per tensor ({human_bytes(4 * n)} in fp32); no machine trains this",
        where=where,
    )


@dataclass(frozen=True)
class Available:
    """Bytes this process can still allocate, and what said so."""

    bytes: int
    what: str


def available_memory() -> Available | None:
    """The smallest of what the kernel reports as available (``MemAvailable``), the room left
    under a cgroup memory limit and under ``RLIMIT_AS``; None when nothing can be read."""
    found = [a for a in (_meminfo(), _cgroup(), _address_space()) if a is not None]
    return min(found, key=lambda a: a.bytes) if found else None


def _meminfo() -> Available | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return Available(int(line.split()[1]) * 1024, "available memory")
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return Available(pages, "free memory") if pages > 0 else None


def _cgroup() -> Available | None:
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit) as a, open(usage) as b:
                top, used = a.read().strip(), int(b.read().strip())
        except (OSError, ValueError):
            continue
        if top.isdigit() and int(top) < 1 << 60:
            return Available(max(0, int(top) - used), "memory left under the cgroup limit")
    return None


def _address_space() -> Available | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError, IndexError):
        return None
    return Available(max(0, soft - mapped), "address space left under RLIMIT_AS")


def largest_layer(recipe: Recipe, batch: int, bytes_per_element: int) -> str:
    """``where (name, kind)`` of the layer holding the most memory: parameters plus its output
    for the batch (the key to change first)."""
    graph = recipe.graph
    assert graph is not None
    counts = node_counts(graph)

    def held(node) -> int:
        return (counts[node.name].params + batch * prod(node.shape)) * bytes_per_element

    node = max(graph.nodes, key=held)
    return f"{node.where} ({node.name}, {node.kind})"


def memory_message(
    memory: TrainingMemory, available: Available, batch_key: str, batch: int, where: str
) -> str:
    """One line: the estimate, its parts, the memory there is, and the largest layer."""
    parts = ", ".join(
        f"{label} {human_bytes(value)}"
        for label, value in (
            ("weights", memory.weights),
            ("gradients", memory.gradients),
            ("optimizer state", memory.optimizer_state),
            ("activations", memory.activations),
        )
    )
    return (
        f"training at {batch_key} {batch} needs at least {human_bytes(memory.total)} ({parts}), "
        f"more than the {human_bytes(available.bytes)} of {available.what}; the largest layer "
        f"is {where}"
    )


def train_estimate(
    recipe: Recipe, batch: int, optimizer: str, momentum: float, amp: str
) -> TrainingMemory:
    """The training-memory estimate of a recipe's ``train:`` settings: fp32 weights, gradients
    and optimizer state (adam/adamw: two moments, sgd: a momentum buffer unless momentum is 0),
    and activations in the autocast dtype under AMP."""
    from cnnkit.analysis.counts import frozen_params, totals
    from cnnkit.analysis.memory import saved_activation_bytes, training_memory

    graph = recipe.graph
    assert graph is not None
    sums, frozen = totals(graph), frozen_params(graph)
    states = "adam" if optimizer in ("adam", "adamw") else "sgd" if momentum else "sgd-nomomentum"
    return training_memory(
        trainable=sums.params - frozen,
        frozen=frozen + sums.buffers,
        activation_bytes=saved_activation_bytes(graph, batch, "fp32" if amp == "off" else "fp16"),
        optimizer=states,
    )


def evaluation_bytes(recipe: Recipe, batch: int, weights: int) -> int:
    """Evaluation runs without gradients: at least the weights and one layer's input and
    output (fp32) for the whole batch are held at once."""
    graph = recipe.graph
    assert graph is not None
    widest = max(sum(map(prod, graph.input_shapes(n))) + prod(n.shape) for n in graph.nodes)
    return weights + 4 * batch * widest


def evaluation_message(need: int, available: Available, batch: int, where: str) -> str:
    return (
        f"evaluating at train.eval_batch_size {batch} needs at least {human_bytes(need)} (the "
        f"weights and one layer's input and output for the batch), more than the "
        f"{human_bytes(available.bytes)} of {available.what}; the largest layer is {where}"
    )
