"""Honest timing of a model: end to end and per layer, inference or a training step.

Rules kept here so every caller gets them: random inputs (never zeros), warm-up iterations
excluded, CUDA work timed with events (or a synchronize before reading the host clock),
medians over repeats, and a training step that includes loss, backward and optimizer step.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("infer", "train")


@dataclass(frozen=True)
class Settings:
    """How to run the model while timing it."""

    device: str = "cpu"  # "cpu" | "cuda" | "cuda:N" | "mps"
    mode: str = "infer"  # "infer": forward under no_grad; "train": forward+backward+SGD step
    dtype: str = "fp32"  # autocast dtype: fp32 (none), bf16, fp16
    channels_last: bool = False  # NHWC memory format for 4-D inputs (faster convs on GPUs)
    compile: bool = False  # torch.compile the model (end-to-end timing only)
    warmup: int = 3  # untimed iterations first (allocator, cudnn autotune, compilation)
    iters: int = 10  # timed iterations; medians and p90 are over these


@dataclass
class EndToEnd:
    """Latency of one iteration at one batch size (seconds) and what it implies."""

    batch: int
    times: list[float]
    peak_memory: int  # bytes: CUDA max allocated, or the process's peak RSS on CPU
    memory_kind: str  # "cuda_max_allocated" | "cpu_peak_rss"

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median


@dataclass
class LayerTime:
    """Median forward (and backward) time of one leaf module, per iteration, in seconds."""

    name: str
    kind: str
    output: tuple[int, ...]
    forward: float
    backward: float | None = None
    samples_fwd: list[float] = field(default_factory=list, repr=False)
    samples_bwd: list[float] = field(default_factory=list, repr=False)

    @property
    def total(self) -> float:
        return self.forward + (self.backward or 0.0)


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when there is one, else the CPU; an explicit device must exist here."""
    from cnnkit.errors import InputError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine")
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("--device mps: MPS is not available on this machine")
        return device
    if device != "cpu":
        raise InputError(f"--device: expected auto, cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def memory_of(device: str) -> int | None:
    """Bytes of memory the device has in all (host RAM for the CPU); None when unknown."""
    import os

    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def device_name(device: str) -> str:
    """What the device is, for the report's title: the GPU's name, or the CPU and its threads."""
    import platform

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    if device == "mps":
        return "Apple MPS"
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def synchronize(device: str) -> None:
    if is_cuda(device):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


def prepare(model: nn.Module, settings: Settings) -> nn.Module:
    """Move the model to the device and memory format; compile it if asked."""
    model = model.to(settings.device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train(settings.mode == "train")
    if settings.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model


def random_batch(
    input_shape: tuple[int, ...], batch: int, settings: Settings, integer_high: int | None = None
) -> torch.Tensor:
    """Random inputs (uniform noise, or token ids below ``integer_high`` for embeddings)."""
    shape = (batch, *input_shape)
    if integer_high is not None:
        return torch.randint(0, integer_high, shape, device=settings.device)
    x = torch.randn(shape, device=settings.device)
    if settings.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _autocast(settings: Settings) -> contextlib.AbstractContextManager:
    dtype = DTYPES[settings.dtype]
    if dtype is None:
        return contextlib.nullcontext()
    device_type = "cuda" if is_cuda(settings.device) else settings.device
    return torch.autocast(device_type=device_type, dtype=dtype)


def step_function(
    model: nn.Module, settings: Settings
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.optim.Optimizer | None]:
    """One iteration: a no-grad forward, or forward + loss + backward + SGD step."""
    if settings.mode == "infer":

        def infer(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad(), _autocast(settings):
                return model(x)

        return infer, None
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train(x: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(settings):
            out = model(x)
            # A loss that touches every output, as cross-entropy would, without needing labels.
            loss = out.float().square().mean()
        loss.backward()
        optimizer.step()
        return loss

    return train, optimizer


class _Timer:
    """Times regions with CUDA events on a GPU, with the host clock elsewhere."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = is_cuda(device)

    def mark(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        synchronize(self.device)
        return time.perf_counter()

    def elapsed(self, start: object, end: object) -> float:
        if self.cuda:
            return start.elapsed_time(end) / 1000.0  # type: ignore[attr-defined]
        return float(end) - float(start)  # type: ignore[arg-type]


def _peak_memory_reset(device: str) -> None:
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory(device: str) -> tuple[int, str]:
    if is_cuda(device):
        return torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "cpu_peak_rss"
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu_peak_rss"


def end_to_end(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int,
    settings: Settings,
    integer_high: int | None = None,
) -> EndToEnd:
    """Median latency of one iteration at ``batch``; the model must already be prepared."""
    step, _ = step_function(model, settings)
    timer = _Timer(settings.device)
    inputs = [random_batch(input_shape, batch, settings, integer_high) for _ in range(2)]
    for i in range(settings.warmup):
        step(inputs[i % 2])
    synchronize(settings.device)
    _peak_memory_reset(settings.device)
    # Mark every iteration's start and end, read them all after one final synchronisation:
    # on a GPU the events time the device's work without a host stall between iterations.
    marks = []
    for i in range(settings.iters):
        start = timer.mark()
        step(inputs[i % 2])
        marks.append((start, timer.mark()))
    synchronize(settings.device)
    times = [timer.elapsed(start, end) for start, end in marks]
    peak, kind = _peak_memory(settings.device)
    return EndToEnd(batch, times, peak, kind)


def _leaves(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            yield name, module


@contextlib.contextmanager
def _no_inplace(model: nn.Module) -> Iterator[None]:
    """Backward hooks cannot see through in-place activations: switch them off meanwhile."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False  # type: ignore[assignment]
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True  # type: ignore[assignment]


_END_OF_BACKWARD = "__backward_end__"


class _LayerMarks:
    """The hooks' clock marks for one iteration, and the per-layer samples kept from them."""

    def __init__(self, leaves: list[tuple[str, nn.Module]], timer: _Timer) -> None:
        self.timer = timer
        self.marks: dict[str, dict[str, object]] = {name: {} for name, _ in leaves}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.needs_input_grad: dict[str, bool] = {}
        self.samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _ in leaves}

    def hook(self, name: str, key: str) -> Callable[..., None]:
        def record(module: nn.Module, *args: object) -> None:
            self.marks[name][key] = self.timer.mark()
            if key == "fwd_start":
                inputs = args[0] if isinstance(args[0], tuple) else (args[0],)
                self.needs_input_grad[name] = any(
                    isinstance(t, torch.Tensor) and t.requires_grad for t in inputs
                )
            elif key == "fwd_end":
                out = args[-1]
                if isinstance(out, torch.Tensor):
                    self.shapes[name] = tuple(out.shape[1:])

        return record

    def attach(self, leaves: list[tuple[str, nn.Module]], train: bool) -> list[object]:
        """Forward (and in train mode backward) start and end hooks on every leaf."""
        handles = []
        for name, module in leaves:
            handles.append(module.register_forward_pre_hook(self.hook(name, "fwd_start")))
            handles.append(module.register_forward_hook(self.hook(name, "fwd_end")))
            if train:
                handles.append(module.register_full_backward_pre_hook(self.hook(name, "bwd_start")))
                handles.append(module.register_full_backward_hook(self.hook(name, "bwd_end")))
        return handles

    def mark_end_of_backward(self, *_: object) -> None:
        self.marks.setdefault(_END_OF_BACKWARD, {})["t"] = self.timer.mark()

    def clear(self) -> None:
        for m in self.marks.values():
            m.clear()

    def keep(self) -> None:
        """Turn this iteration's marks into one forward (and backward) sample per layer."""
        for name, m in self.marks.items():
            if name == _END_OF_BACKWARD:
                continue
            if "fwd_start" in m and "fwd_end" in m:
                self.samples[name][0].append(self.timer.elapsed(m["fwd_start"], m["fwd_end"]))
            if "bwd_start" in m and "bwd_end" in m:
                end = m["bwd_end"]
                if not self.needs_input_grad.get(name, True):
                    end = self.marks[_END_OF_BACKWARD]["t"]
                self.samples[name][1].append(self.timer.elapsed(m["bwd_start"], end))

    def times(self, leaves: list[tuple[str, nn.Module]], train: bool) -> list[LayerTime]:
        """Medians per layer; a layer defined but never called is left out."""
        result = []
        for name, module in leaves:
            fwd, bwd = self.samples[name]
            if not fwd:
                continue
            backward = statistics.median(bwd) if bwd else (0.0 if train else None)
            shape = self.shapes.get(name, ())
            result.append(
                LayerTime(
                    name, type(module).__name__, shape, statistics.median(fwd), backward, fwd, bwd
                )
            )
        return result


def per_layer(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch: int,
    settings: Settings,
    integer_high: int | None = None,
) -> list[LayerTime]:
    """Median forward (and, in train mode, backward) time of every leaf module.

    Hooks mark the start and end of each module's work with events/clock reads, so the
    times exclude the Python between layers; warm-up iterations are not recorded.
    """
    if settings.compile:
        raise ValueError("per-layer timing needs an eager model (drop --compile)")
    train = settings.mode == "train"
    leaves = list(_leaves(model))
    marks = _LayerMarks(leaves, _Timer(settings.device))
    handles = marks.attach(leaves, train)
    step, optimizer = step_function(model, settings)
    if optimizer is not None:
        # Mark the end of backward: a module none of whose inputs needs a gradient (the
        # first layer) fires its backward hook early, so its backward ends here instead.
        optimizer.register_step_pre_hook(marks.mark_end_of_backward)
    try:
        with _no_inplace(model), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            inputs = [random_batch(input_shape, batch, settings, integer_high) for _ in range(2)]
            for i in range(settings.warmup + settings.iters):
                marks.clear()
                step(inputs[i % 2])
                synchronize(settings.device)
                if i >= settings.warmup:
                    marks.keep()
    finally:
        for h in handles:
            h.remove()  # type: ignore[attr-defined]
    return marks.times(leaves, train)
