"""Activations of the classic literature. All are pointwise in space.

Ops per output element (each row's ``ops``): one for comparisons and simple functions, two
for LeCun's scaled tanh (the tanh and the scale), three for softmax (exp, sum, divide). The
smooth gated kinds count one op per elementary function (sigmoid, erf, tanh, exp, log, clip)
and one per arithmetic step on the element, constants folded: silu 2, hardsigmoid 3,
hardswish 4, gelu 5 (tanh form 8), mish 5.
"""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import (
    SAVES_INPUT,
    SAVES_OUTPUT,
    SAVES_VIEW,
    Arg,
    Args,
    Counts,
    Kept,
    LayerKind,
    Saved,
    Shape,
    elementwise_ops,
    prod,
    saved_rule,
)
from cnnkit.validation import word


def _act(
    name: str,
    doc: str,
    ops: int,
    *args: Arg,
    short: str | None = None,
    aliases=(),
    why: str = "",
):
    """A pointwise kind costing ``ops`` per output element, built by the builder of its name."""
    return LayerKind(
        name,
        doc,
        tuple(args),
        count=elementwise_ops(ops),
        short=short,
        aliases=aliases,
        saves=SAVES.get(name),
        ops=f"ops = {ops} per output element{why}.",
        builder=f"cnnkit.model.builders:{name}",
    )


def prelu_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """params: one slope, or one per channel with ``per_channel``."""
    n = prod(out)
    return Counts(out[0] if args["per_channel"] else 1, 0, 0, n, n)


def maxout_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    ch, *rest = inputs[0]
    if ch % args["pieces"]:
        raise ShapeError(
            f"maxout with {args['pieces']} pieces needs channels divisible by it, "
            f"got shape {fmt(inputs[0])}"
        )
    return (ch // args["pieces"], *rest)


def maxout_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    n = prod(out)
    return Counts(ops=n * (args["pieces"] - 1), activations=n)


def new_like_output(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """A tensor of the output's size made inside the layer (scaled tanh's tanh(s*x))."""
    return Saved(new=(Kept(prod(out)),))


def gated_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """silu, hardswish, hardsigmoid, mish differentiate through their input; in place,
    autograd keeps a copy of it made before it is overwritten, and the output is the
    input's storage."""
    if args["inplace"]:
        return Saved(new=(Kept(prod(inputs[0])),), view=True)
    return Saved(inputs=(0,))


GELU_OPS = {"none": 5, "tanh": 8}


def gelu_count(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Counts:
    """ops: x * 0.5 * (1 + erf(x / sqrt 2)) is 5 per element; the tanh form
    x * (0.5 + 0.5 tanh(x * (c + c a x^2))) is 8."""
    return elementwise_ops(GELU_OPS[args["approximate"]])(args, inputs, out)


def rrelu_saves(args: Args, inputs: tuple[Shape, ...], out: Shape) -> Saved:
    """The input and the random slopes drawn for it (one per element, while training)."""
    return Saved(inputs=(0,), new=(Kept(prod(inputs[0])),))


# What autograd keeps for backward, for the kinds made by ``_act``: relu, sigmoid, tanh and
# softmax differentiate through their output; relu6 (hardtanh), leaky relu and elu (not in
# place) through their input.
SAVES = {
    "relu": SAVES_OUTPUT,
    "relu6": SAVES_INPUT,
    "sigmoid": SAVES_OUTPUT,
    "tanh": SAVES_OUTPUT,
    "scaled_tanh": new_like_output,
    "leaky_relu": SAVES_INPUT,
    "rrelu": rrelu_saves,
    "elu": SAVES_INPUT,
    "softmax": SAVES_OUTPUT,
    "log_softmax": SAVES_OUTPUT,
    "identity": SAVES_VIEW,
    "silu": gated_saves,
    "hardswish": gated_saves,
    "hardsigmoid": gated_saves,
    "mish": gated_saves,
}

INPLACE = Arg("inplace", c.boolean, False, (), "overwrite the input (as torch's inplace)")
SLOPE = Arg("slope", c.number(), 0.01, ("negative_slope",), "slope for x < 0")

KINDS = (
    _act("relu", "Rectified linear unit (nn.ReLU).", 1),
    _act("relu6", "ReLU clipped at 6 (nn.ReLU6).", 1),
    _act("sigmoid", "Logistic sigmoid (nn.Sigmoid).", 1),
    _act("tanh", "Hyperbolic tangent (nn.Tanh).", 1),
    _act(
        "scaled_tanh",
        "LeCun's squashing function A*tanh(S*x), A = 1.7159, S = 2/3 (LeCun et al. 1998, "
        "appendix A): f(1) = 1, f(-1) = -1.",
        2,
        Arg("a", c.number(), 1.7159, ("amplitude",), "amplitude A"),
        Arg("s", c.number(), 2 / 3, ("slope",), "slope S at the origin over A"),
        aliases=("lecun_tanh",),
    ),
    _act(
        "leaky_relu", "Leaky ReLU (nn.LeakyReLU).", 1, SLOPE, short="slope", aliases=("leakyrelu",)
    ),
    LayerKind(
        "prelu",
        "Parametric ReLU with learned slope(s) (nn.PReLU, He et al. 2015).",
        (
            Arg("per_channel", c.boolean, False, (), "one slope per channel"),
            Arg("init", c.number(), 0.25, (), "initial slope"),
        ),
        count=prelu_count,
        saves=SAVES_INPUT,
        ops="ops = 1 per output element.",
        builder="cnnkit.model.builders:prelu",
    ),
    _act(
        "rrelu",
        "Randomised leaky ReLU (nn.RReLU): slope drawn from [lower, upper] while training.",
        1,
        Arg("lower", c.number(), 1 / 8, (), "lowest slope"),
        Arg("upper", c.number(), 1 / 3, (), "highest slope"),
    ),
    _act(
        "elu", "Exponential linear unit (nn.ELU).", 1, Arg("alpha", c.number(), 1.0), short="alpha"
    ),
    LayerKind(
        "maxout",
        "Maxout (Goodfellow et al. 2013): the max over groups of `pieces` consecutive "
        "channels; put it after a conv or linear with pieces x the wanted channels.",
        (Arg("pieces", c.positive_int, 2, ("k",), "channels per group"),),
        maxout_shape,
        count=maxout_count,
        short="pieces",
        saves=saved_rule((0,), output=True),  # amax keeps its input and its result
        ops="ops = pieces - 1 comparisons per output element.",
        builder="cnnkit.model.builders:maxout",
    ),
    _act("softmax", "Softmax over the channel/feature axis (nn.Softmax(dim=1)).", 3),
    _act("log_softmax", "Log-softmax over the channel/feature axis (nn.LogSoftmax(dim=1)).", 3),
    _act("identity", "Passes its input through (nn.Identity).", 0),
    # Smooth and hard gated activations of MobileNetV3 / EfficientNet / transformers.
    _act(
        "silu",
        "Sigmoid-weighted linear unit x * sigmoid(x) (nn.SiLU; swish of Ramachandran et al.).",
        2,
        INPLACE,
        aliases=("swish",),
        why=" (sigmoid, multiply)",
    ),
    _act(
        "hardswish",
        "Hard swish x * relu6(x + 3) / 6 (nn.Hardswish, MobileNetV3).",
        4,
        INPLACE,
        aliases=("hard_swish",),
        why=" (multiply, add, clip, multiply)",
    ),
    _act(
        "hardsigmoid",
        "Hard sigmoid relu6(x + 3) / 6 (nn.Hardsigmoid, MobileNetV3).",
        3,
        INPLACE,
        aliases=("hard_sigmoid",),
        why=" (multiply, add, clip)",
    ),
    LayerKind(
        "gelu",
        "Gaussian error linear unit x * Phi(x) (nn.GELU); approximate: tanh for the tanh form.",
        (Arg("approximate", word(tuple(GELU_OPS)), "none", (), "none (erf) or tanh"),),
        count=gelu_count,
        short="approximate",
        saves=SAVES_INPUT,
        ops="ops = 5 per output element (approximate: none: divide, erf, add, multiply, "
        "multiply); 8 for approximate: tanh (square, multiply, add, multiply, tanh, "
        "multiply, add, multiply).",
        builder="cnnkit.model.builders:gelu",
    ),
    _act(
        "mish",
        "Mish x * tanh(softplus(x)) (nn.Mish, Misra 2019).",
        5,
        INPLACE,
        why=" (exp, add, log, tanh, multiply)",
    ),
)
