"""A first-order model of training memory, on plain ints (no torch).

Training holds four things per step: the weights, one gradient per trainable parameter,
the optimizer's state and the activations autograd keeps for the backward pass. The model
below counts each in the element size of one dtype, so it is an estimate of the tensors
themselves: the allocator's caching and fragmentation, cuDNN/cuBLAS workspaces, the CUDA
context and mixed-precision master copies (AMP keeps fp32 weights next to fp16 ones) are
not in it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes per element of the dtypes `--dtype` accepts.
DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8}

# State tensors the optimizer keeps per trainable parameter (torch.optim's defaults):
# SGD with momentum keeps one momentum buffer, Adam/AdamW two moments (exp_avg,
# exp_avg_sq), plain SGD nothing.
OPTIMIZER_STATES: dict[str, int] = {"sgd": 1, "adam": 2, "sgd-nomomentum": 0}

ACTIVATIONS_ASSUMPTION = (
    "activations kept for backward = the input batch plus every layer's output, each kept "
    "once (what autograd saves when no layer runs in place and nothing is recomputed); "
    "workspaces, allocator overhead and AMP master weights are not included"
)


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
            "assumptions": assumptions(self.optimizer),
        }


def training_memory(
    *,
    trainable: int,
    frozen: int,
    activation_elements: int,
    dtype: str = "fp32",
    optimizer: str = "sgd",
) -> TrainingMemory:
    """Memory of one training step.

    ``frozen`` is every stored element that gets no gradient (buffers such as BN running
    statistics, parameters with ``requires_grad=False``); ``activation_elements`` is the
    number of activation elements kept for backward at the batch size in use.
    """
    size = DTYPE_BYTES[dtype]
    return TrainingMemory(
        dtype=dtype,
        optimizer=optimizer,
        bytes_per_element=size,
        weights=(trainable + frozen) * size,
        gradients=trainable * size,
        optimizer_state=OPTIMIZER_STATES[optimizer] * trainable * size,
        activations=activation_elements * size,
    )


def assumptions(optimizer: str) -> str:
    """The sentence the output prints next to the estimate."""
    states = OPTIMIZER_STATES[optimizer]
    state = f"{states} state tensor(s) per trainable parameter ({optimizer})"
    return (
        f"every tensor in the chosen dtype; weights = parameters + buffers; gradients = one "
        f"per trainable parameter; optimizer = {state}; {ACTIVATIONS_ASSUMPTION}"
    )


def human_bytes(count: float) -> str:
    """``1.23 GB`` style (powers of 1000, as ``--max-memory 1.5GB`` reads them)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f} B"
