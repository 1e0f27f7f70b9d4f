"""A model of training memory, on plain ints (no torch).

Training holds four things per step: the weights, one gradient per trainable parameter,
the optimizer's state and the activations autograd keeps for the backward pass. The first
three are counted in the element size of one dtype. The last is counted the way autograd
keeps it: each layer kind's ``saves`` rule says which of its inputs and outputs and which
tensors of its own the backward pass needs (``cnnkit.layers``); a storage that several
layers keep (a ReLU's output, which the next convolution keeps as its input) is counted
once, and int64 indices (max-pool argmax, token ids) take 8 bytes whatever the dtype.
What is left out: the allocator's caching and fragmentation, cuDNN/cuBLAS and CPU
workspaces, tensors that live only during the forward or backward pass (the output of a
layer nobody keeps, the gradient of each activation), the CUDA context, the framework
itself, and mixed-precision master copies (AMP keeps fp32 weights next to fp16 ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnkit.analysis.counts import node_counts
from cnnkit.layers import LAYERS
from cnnkit.layers._kind import INT64, Kept, Saved, prod, saved_rule
from cnnkit.recipe.graph import INPUT, Graph

# Bytes per element of the dtypes `--dtype` accepts.
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8}

# State tensors the optimizer keeps per trainable parameter (torch.optim's defaults):
# SGD with momentum keeps one momentum buffer, Adam/AdamW two moments (exp_avg,
# exp_avg_sq), plain SGD nothing.
OPTIMIZER_STATES: dict[str, int] = {"sgd": 1, "adam": 2, "sgd-nomomentum": 0}

ACTIVATIONS_ASSUMPTION = {
    "saved_for_backward": (
        "activations = the tensors autograd saves for backward in training mode, by each "
        "layer kind's rule (a storage kept by several layers counted once, int64 indices at 8 "
        "bytes), plus cross-entropy's fp32 log-probabilities and int64 targets; allocator "
        "caching, workspaces, transient forward/backward tensors, the CUDA context and AMP "
        "master weights are not included"
    ),
    "leaf_module_outputs": (
        "activations = the input batch plus every leaf module's output, each once (no "
        "per-kind rule for torchvision/timm modules: in-place ops and what each op really "
        "saves are not seen); allocator caching, workspaces and AMP master weights are not "
        "included"
    ),
}

# Cross-entropy on the logits (the training loop's loss): log_softmax keeps its fp32 result,
# nll_loss the int64 targets and a one-element total weight.
LOSS_VALUE_BYTES = 4
INT64_BYTES = 8


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes of each part of one training step's memory, and the assumptions behind them."""

    dtype: str
    optimizer: str
    bytes_per_element: int
    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    activations_basis: str = "saved_for_backward"

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def as_dict(self) -> dict[str, object]:
        return {
            "dtype": self.dtype,
            "optimizer": self.optimizer,
            "bytes_per_element": self.bytes_per_element,
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer_state": self.optimizer_state,
            "activations": self.activations,
            "total": self.total,
            "activations_basis": self.activations_basis,
            "assumptions": assumptions(self.optimizer, self.activations_basis),
        }


def training_memory(
    *,
    trainable: int,
    frozen: int,
    activation_elements: int = 0,
    activation_bytes: int | None = None,
    dtype: str = "fp32",
    optimizer: str = "sgd",
    activations_basis: str = "saved_for_backward",
) -> TrainingMemory:
    """Memory of one training step.

    ``frozen`` is every stored element that gets no gradient (buffers such as BN running
    statistics, parameters with ``requires_grad=False``). The activations kept for backward
    at the batch size in use are ``activation_bytes`` (``saved_activation_bytes`` for a
    recipe) or, without it, ``activation_elements`` in the dtype.
    """
    size = DTYPE_BYTES[dtype]
    if activation_bytes is None:
        activation_bytes = activation_elements * size
    return TrainingMemory(
        dtype=dtype,
        optimizer=optimizer,
        bytes_per_element=size,
        weights=(trainable + frozen) * size,
        gradients=trainable * size,
        optimizer_state=OPTIMIZER_STATES[optimizer] * trainable * size,
        activations=activation_bytes,
        activations_basis=activations_basis,
    )


def assumptions(optimizer: str, basis: str = "saved_for_backward") -> str:
    """The sentence the output prints next to the estimate."""
    states = OPTIMIZER_STATES[optimizer]
    state = f"{states} state tensor(s) per trainable parameter ({optimizer})"
    return (
        f"weights = parameters + buffers, gradients = one per trainable parameter, "
        f"optimizer = {state}, all in the chosen dtype; {ACTIVATIONS_ASSUMPTION[basis]}"
    )


def saved_activation_bytes(graph: Graph, batch: int, dtype: str, loss: bool = True) -> int:
    """Bytes autograd keeps for backward after one training forward pass of ``graph`` (and
    of the cross-entropy loss on its output, with ``loss`` and a vector output).

    Storages are tracked through the graph: a kind's rule names the inputs and the output
    it keeps, each distinct storage is counted once, and a view (flatten) keeps its input's
    storage. A layer that nothing upstream makes differentiable (no parameters on the way
    from the input) keeps nothing.
    """
    size = DTYPE_BYTES[dtype]
    token_ids = any(n.kind == "embedding" and INPUT in n.inputs for n in graph.nodes)
    storage = {INPUT: INPUT}
    nbytes = {INPUT: batch * prod(graph.input_shape) * (INT64_BYTES if token_ids else size)}
    grad = {INPUT: False}
    kept: set[str] = set()
    made = 0
    counts = node_counts(graph)
    for node in graph.nodes:
        saved = _saved(node.kind, node.args, graph.input_shapes(node), node.shape)
        grad[node.name] = counts[node.name].params > 0 or any(grad[i] for i in node.inputs)
        if saved.view:
            storage[node.name] = storage[node.inputs[0]]
        else:
            storage[node.name] = node.name
            nbytes[node.name] = batch * prod(node.shape) * size
        if not grad[node.name]:
            continue
        kept.update(storage[node.inputs[i]] for i in saved.inputs)
        if saved.output:
            kept.add(storage[node.name])
        made += sum(_kept_bytes(k, batch, size) for k in saved.new)
    return sum(nbytes[s] for s in kept) + made + (_loss_bytes(graph, batch) if loss else 0)


def _kept_bytes(kept: Kept, batch: int, size: int) -> int:
    count = kept.elements * (batch if kept.per_sample else 1)
    return count * (INT64_BYTES if kept.dtype == INT64 else size)


def _saved(kind: str, args, inputs: tuple[tuple[int, ...], ...], out) -> Saved:
    """The kind's rule; a kind without one is assumed to keep its inputs and its output."""
    rule = LAYERS[kind].saves or saved_rule(tuple(range(len(inputs))), output=True)
    return rule(args, inputs, out)


def _loss_bytes(graph: Graph, batch: int) -> int:
    """Cross-entropy on a (classes,) output: fp32 log-probabilities, int64 targets and a
    one-element fp32 total weight. Other outputs have no loss in the estimate."""
    if len(graph.output_shape) != 1:
        return 0
    classes = graph.output_shape[0]
    return batch * classes * LOSS_VALUE_BYTES + batch * INT64_BYTES + LOSS_VALUE_BYTES


def human_bytes(count: float) -> str:
    """``1.23 GB`` style (powers of 1000, as ``--max-memory 1.5GB`` reads them); beyond
    exabytes in powers of ten (``3.60e+23 B``)."""
    if abs(count) >= 1e21:  # math.log10 takes ints of any size; float() would overflow
        exponent = math.floor(math.log10(abs(count)))
        mantissa = 10 ** (math.log10(abs(count)) - exponent)
        return f"{'-' if count < 0 else ''}{mantissa:.2f}e+{exponent} B"
    for unit, scale in (
        ("EB", 1e18),
        ("PB", 1e15),
        ("TB", 1e12),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
    ):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} B"
