"""What a layer kind is: one row holding its argument schema, its shape, receptive-field,
count, ops and saved-for-backward rules, how ``model.width`` scales it, the note that explains
where fvcore counts it differently, and a lazy reference to its torch builder.

Every rule is a plain function on ints and tuples, so the recipe loader and the analyses can
use them without torch. Shapes exclude the batch: ``(C, *spatial)`` for feature maps,
``(features,)`` for vectors, ``(L,)`` for a sequence of token ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnkit.arith.receptive import Span
from cnnkit.layers._suggest import suggest

Shape = tuple[int, ...]
Args = Mapping[str, Any]


class ArgError(ValueError):
    """A bad argument; ``key`` is the user's key (None for the kind's value as a whole)."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(message)


REQUIRED: Any = object()  # sentinel default: the argument must be given


@dataclass(frozen=True)
class Arg:
    """One argument: canonical name, validator (returns the normalised value or raises
    ``ValueError("expected ..., got ...")``), default and the other keys that mean it."""

    name: str
    check: Callable[[Any], Any]
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Window:
    """What the receptive-field algebra sees of a sliding-window layer, per spatial axis.

    ``exact`` is False for adaptive pooling whose windows differ in size (the largest
    window and the average stride are given). ``adaptive``: the windows are PyTorch's adaptive
    ones, floor(i*n/o) .. ceil((i+1)*n/o) - 1 for n inputs and o outputs. ``transposed``: the
    geometry is that of a transposed convolution (or any upsampling written as one): output o
    reads the inputs i with i*stride - padding + t*dilation = o, a fractional stride.
    """

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad_before: tuple[int, ...]
    dilation: tuple[int, ...]
    exact: bool = True
    adaptive: bool = False
    transposed: bool = False


@dataclass(frozen=True)
class Resampled:
    """What the receptive-field algebra sees of a resampling layer (upsample): per spatial
    axis, the span of input positions each output unit reads, which no kernel/stride/padding
    describes; from input 0 only (a second input gives only a size). ``spans`` None: the
    positions depend on rounding or repeat too irregularly, and ``reason`` says which."""

    spans: tuple[Span, ...] | None
    reason: str = ""


class _SeesAll:
    """Marker: every output unit sees the whole input (flatten, linear, global pooling)."""

    def __repr__(self) -> str:
        return "SEES_ALL"


SEES_ALL = _SeesAll()
RF = (
    Window | Resampled | _SeesAll | None
)  # None: pointwise, the receptive field passes through unchanged


@dataclass(frozen=True)
class Counts:
    """Costs of one layer (or a sum of layers).

    params: trainable parameters. buffers: non-trainable state (BN running statistics and
    its batch counter, fixed RBF prototypes). macs: conv + linear multiply-accumulates, bias
    excluded (the convention of torchvision's published GFLOPS and fvcore). ops: every
    operation, one per MAC plus the per-kind rule of each row's ``ops``. activations:
    output elements per sample.
    """

    params: int = 0
    buffers: int = 0
    macs: int = 0
    ops: int = 0
    activations: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.params + other.params,
            self.buffers + other.buffers,
            self.macs + other.macs,
            self.ops + other.ops,
            self.activations + other.activations,
        )


# Element types of the tensors autograd keeps: the activation dtype, or int64 (argmax
# indices, token ids, index lists), whatever the dtype of the activations.
VALUE = "value"
INT64 = "int64"


@dataclass(frozen=True)
class Kept:
    """A tensor a layer creates and autograd keeps (not its input or output): ``elements``
    per sample (or in all, when ``per_sample`` is False), of element type ``VALUE``/``INT64``."""

    elements: int
    per_sample: bool = True
    dtype: str = VALUE


@dataclass(frozen=True)
class Saved:
    """What autograd keeps for the backward pass of one layer in training mode, as
    PyTorch's derivative formulas (on CPU) save it: the inputs it keeps (by position), its
    output, and tensors it makes on the way. Inputs and outputs are storages shared with
    the neighbouring layers, so the memory analysis counts each once; ``view`` says the
    output shares input 0's storage (flatten, identity)."""

    inputs: tuple[int, ...] = ()
    output: bool = False
    new: tuple[Kept, ...] = ()
    view: bool = False


ShapeRule = Callable[[Args, tuple[Shape, ...]], Shape]
RFRule = Callable[[Args, tuple[Shape, ...]], RF]
CountRule = Callable[[Args, tuple[Shape, ...], Shape], Counts]
SavedRule = Callable[[Args, tuple[Shape, ...], Shape], Saved]
WidthRule = Callable[[Args, float], dict[str, Any]]


def same_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    """Shape rule of elementwise kinds: the output has the input's shape."""
    return inputs[0]


def pointwise(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Receptive-field rule of kinds that look at one position at a time."""
    return None


def sees_all(args: Args, inputs: tuple[Shape, ...]) -> RF:
    """Receptive-field rule of kinds whose every output reads the whole input."""
    return SEES_ALL


def elementwise_ops(per_element: int) -> CountRule:
    """Count rule of parameter-free kinds costing ``per_element`` ops per output element."""

    def count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
        n = prod(out)
        return Counts(ops=per_element * n, activations=n)

    return count


def saved_rule(inputs: tuple[int, ...] = (), output: bool = False, view: bool = False) -> SavedRule:
    """Saved-for-backward rule of kinds that keep only their input(s) and/or output."""
    fixed = Saved(inputs, output, (), view)

    def rule(args: Args, ins: tuple[Shape, ...], out: Shape) -> Saved:
        return fixed

    return rule


SAVES_NOTHING = saved_rule()  # add, concat, mean: the backward needs shapes only
SAVES_INPUT = saved_rule((0,))  # conv, linear, leaky relu, ...: the gradient reads the input
SAVES_OUTPUT = saved_rule(output=True)  # relu, sigmoid, tanh, softmax: it reads the output
SAVES_VIEW = saved_rule(view=True)  # flatten, identity: the output is the input's storage


def prod(values: tuple[int, ...]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def widened(out: int, width: float, groups: int = 1) -> tuple[int, int]:
    """(out, groups) scaled by ``width``. A channel-wise conv (groups == out, e.g. depthwise)
    stays channel-wise; otherwise the number of groups (a ResNeXt cardinality) is kept and
    ``out`` is rounded to a multiple of it, at least one channel per group."""
    if groups > 1 and groups == out:
        scaled = max(1, round(out * width))
        return scaled, scaled
    return max(groups, round(out * width / groups) * groups), groups


def widen_channels(args: Args, width: float) -> dict[str, Any]:
    """Width rule of convolutions: ``out`` (and ``groups`` with it) scaled by ``model.width``."""
    out, groups = widened(args["out"], width, args.get("groups", 1))
    return {**args, "out": out, "groups": groups}


# ``package.module:attribute``: where the torch side finds a kind's builder (never imported
# here, so the pure side stays free of torch).
_BUILDER_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class LayerKind:
    """One row of the registry: everything cnnkit knows about a kind, in one place.

    ``short`` names the argument a bare value fills (``- conv: 64`` is ``out``); ``arity`` is
    (fewest, most) inputs, None for no limit; ``saves`` is what autograd keeps for its
    backward pass (the training-memory estimate). Keyword-only, and required so that no kind
    can be registered without them: ``ops``, the ops-column rule as ``cnnkit params`` states
    it, and ``builder``, the ``"module:function"`` that builds its ``nn.Module`` (resolved by
    the torch side only). ``widens``: how ``model.width`` changes its arguments (None: it
    does not). ``verify_note``: why fvcore counts its MACs differently by design (None: it
    counts them exactly as the analysis does); ``flop_counter_note``: the same for torch's
    FlopCounterMode, the second oracle of ``params --verify``.
    """

    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    shape: ShapeRule = same_shape
    rf: RFRule = pointwise
    count: CountRule = elementwise_ops(0)
    short: str | None = None
    aliases: tuple[str, ...] = ()
    arity: tuple[int, int | None] = (1, 1)
    saves: SavedRule | None = None  # None: not stated; the memory analysis assumes in + out
    _keys: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    ops: str = field(kw_only=True)
    builder: str = field(kw_only=True)
    widens: WidthRule | None = field(default=None, kw_only=True)
    verify_note: str | None = field(default=None, kw_only=True)
    flop_counter_note: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.ops, str) or not self.ops.strip():
            raise ValueError(f"layer kind {self.name!r}: ops must state the kind's ops rule")
        if not isinstance(self.builder, str) or not _BUILDER_REF.match(self.builder):
            raise ValueError(
                f"layer kind {self.name!r}: builder must be 'package.module:function', "
                f"got {self.builder!r}"
            )
        for arg in self.args:
            for key in (arg.name, *arg.aliases):
                self._keys[key] = arg.name

    @property
    def keys(self) -> Mapping[str, str]:
        """Every accepted key (names and aliases) -> canonical argument name."""
        return self._keys

    def resolve(self, value: Any) -> dict[str, Any]:
        """Validate a recipe value (None, a short-form scalar or a mapping) into full args."""
        if value is None:
            given: dict[str, Any] = {}
        elif isinstance(value, Mapping):
            given = {}
            seen: dict[str, str] = {}
            for key, raw in value.items():
                name = self._keys.get(key) if isinstance(key, str) else None
                if name is None:
                    raise ArgError(
                        str(key), f"unknown argument{suggest(str(key), self._keys, self._keys)}"
                    )
                if name in seen:
                    raise ArgError(key, f"repeats {seen[name]!r} (both mean {name!r})")
                seen[name] = key
                given[name] = (key, raw)
        elif self.short is not None:
            given = {self.short: (None, value)}
        else:
            raise ArgError(
                None,
                f"{self.name} takes named arguments ({', '.join(a.name for a in self.args)}), "
                f"got {value!r}"
                if self.args
                else f"{self.name} takes no arguments, got {value!r}",
            )
        resolved: dict[str, Any] = {}
        for arg in self.args:
            if arg.name in given:
                key, raw = given[arg.name]
                try:
                    resolved[arg.name] = arg.check(raw)
                except ValueError as err:
                    raise ArgError(key, str(err)) from None
            elif arg.default is REQUIRED:
                raise ArgError(None, f"missing argument {arg.name!r} ({arg.doc})")
            else:
                resolved[arg.name] = arg.default
        return resolved
