"""Channel operations without arithmetic: ShuffleNet's channel shuffle and channel slice.

Pointwise in space: a unit of the output sees exactly what the same position of the input
saw, so the receptive field passes through unchanged.
"""

from __future__ import annotations

from cnnkit.errors import ShapeError
from cnnkit.layers import _checks as c
from cnnkit.layers._geometry import fmt
from cnnkit.layers._kind import SAVES_NOTHING, SAVES_VIEW, Arg, Args, LayerKind, Shape


def shuffle_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    """The input's shape; the channels must split into ``groups`` equal groups."""
    shape = inputs[0]
    if len(shape) < 2:
        raise ShapeError(f"channel_shuffle needs a C x ... map, got shape {fmt(shape)}")
    if shape[0] % args["groups"]:
        raise ShapeError(
            f"channel_shuffle with {args['groups']} groups needs channels divisible by it, "
            f"got shape {fmt(shape)}"
        )
    return shape


CHANNEL_SHUFFLE = LayerKind(
    "channel_shuffle",
    "Interleave the channels of `groups` groups (nn.ChannelShuffle; ShuffleNet): channel "
    "g * (C / groups) + i moves to i * groups + g.",
    (Arg("groups", c.positive_int, aliases=("g",), doc="number of channel groups"),),
    shuffle_shape,
    short="groups",
    aliases=("shuffle",),
    saves=SAVES_NOTHING,
    ops="ops: none (a copy).",
    builder="cnnkit.model.builders:channel_shuffle",
)


def slice_shape(args: Args, inputs: tuple[Shape, ...]) -> Shape:
    """Channels ``start`` to ``stop`` (exclusive) of the input, the rest of the shape kept."""
    shape, start, stop = inputs[0], args["start"], args["stop"]
    if len(shape) < 2:
        raise ShapeError(f"channel_slice needs a C x ... map, got shape {fmt(shape)}")
    if not start < stop <= shape[0]:
        raise ShapeError(
            f"channel_slice start {start}, stop {stop} needs start < stop <= the {shape[0]} "
            f"input channels, got shape {fmt(shape)}"
        )
    return (stop - start, *shape[1:])


CHANNEL_SLICE = LayerKind(
    "channel_slice",
    "Channels start..stop-1 of the input (x[:, start:stop]; ShuffleNetV2's channel split).",
    (
        Arg("start", c.nonneg_int, 0, doc="first channel taken"),
        Arg("stop", c.positive_int, doc="one past the last channel taken"),
    ),
    slice_shape,
    aliases=("channels", "split_channels"),
    saves=SAVES_VIEW,
    ops="ops: none (a view).",
    builder="cnnkit.model.builders:channel_slice",
)

KINDS = (CHANNEL_SHUFFLE, CHANNEL_SLICE)
