"""``cnnkit conv`` as data: one layer's output sizes with formulas, the paddings/strides that
give a wanted size, or a numeric convolution of small arrays.

Sizes are given as the CLI takes them (``"3x224x224"``, ``"same"``) or as ints and tuples
(``(3, 224, 224)``, ``3``); errors name the CLI option, since that is where most values
come from. Pure: the arithmetic is ``cnnkit.arith``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnkit.errors import InputError

LAYER_ALIASES = {
    "conv": "conv",
    "convolution": "conv",
    "convtranspose": "convtranspose",
    "transposed": "convtranspose",
    "deconv": "convtranspose",
    "maxpool": "maxpool",
    "pool": "maxpool",
    "avgpool": "avgpool",
}
AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}

Size = str | int | Sequence[int]


def _text(value: Size | None) -> str | None:
    """``(3, 224, 224)`` -> ``"3x224x224"``; strings pass as typed."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return "x".join(map(str, value))


@dataclass(frozen=True)
class _Layer:
    """The parsed options of one layer."""

    op: str
    channels: int | None
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...] | None
    padding: str | tuple[int, ...] | None
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...] | None
    ceil_mode: bool

    @property
    def names(self) -> tuple[str, ...]:
        return AXIS_NAMES[len(self.spatial)]


def conv_report(
    input: Size,
    kernel: Size,
    *,
    stride: Size | None = None,
    padding: Size | None = None,
    dilation: Size = "1",
    layer: str = "conv",
    output_padding: Size | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    dims: int | None = None,
    out_channels: int | None = None,
    groups: int = 1,
    target: Size | None = None,
) -> dict[str, Any]:
    """Everything ``cnnkit conv`` reports about one layer (its ``--json`` document): sizes,
    formulas, parameters and MACs with ``out_channels``; with ``target``, the settings that
    give that output size."""
    input_text, kernel_text = _text(input), _text(kernel)
    assert input_text is not None and kernel_text is not None
    spec = _parse(
        input_text, kernel_text, _text(stride), _text(padding), _text(dilation) or "1",
        layer, _text(output_padding), ceil_mode, dims,
    )  # fmt: skip
    if target is not None:
        return _solve_report(spec, _text(target) or "")
    return _size_report(spec, input_text, kernel_text, count_include_pad, out_channels, groups)


def _parse(
    input: str,
    kernel: str,
    stride: str | None,
    padding: str | None,
    dilation: str,
    layer: str,
    output_padding: str | None,
    ceil_mode: bool,
    dims: int | None,
) -> _Layer:
    from cnnkit.arith import sizes
    from cnnkit.parsing import parse_ints, parse_padding

    op = LAYER_ALIASES.get(layer.lower())
    if op is None:
        raise InputError(
            f"--layer: unknown layer {layer!r}; expected one of {', '.join(sizes.OPS)}"
        )
    shape = parse_ints("--input", input)
    ks = parse_ints("--kernel", kernel)
    channels, spatial = _split_input(shape, ks, dims)
    ss = parse_ints("--stride", stride) if stride is not None else None
    pad = parse_padding("--padding", padding) if padding is not None else None
    ds = parse_ints("--dilation", dilation)
    ops = (
        parse_ints("--output-padding", output_padding, least=0)
        if output_padding is not None
        else None
    )
    if ceil_mode and op not in ("maxpool", "avgpool"):
        raise InputError("--ceil-mode applies to pooling layers (maxpool, avgpool)")
    return _Layer(op, channels, spatial, ks, ss, pad, ds, ops, ceil_mode)


def _split_input(
    shape: tuple[int, ...], kernel: tuple[int, ...], dims: int | None
) -> tuple[int | None, tuple[int, ...]]:
    """Split ``--input`` into (channels or None, spatial) using --dims or the kernel's length."""
    explicit = dims is not None
    if dims is None and len(kernel) > 1:
        dims = len(kernel)
    elif dims is None:
        dims = len(shape) if len(shape) <= 2 else len(shape) - 1
    if dims not in (1, 2, 3):
        source = "--dims" if explicit else ("--kernel" if len(kernel) > 1 else "--input")
        raise InputError(f"{source}: convolutions have 1, 2 or 3 spatial dimensions, not {dims}")
    if len(shape) == dims:
        return None, shape
    if len(shape) == dims + 1:
        return shape[0], shape[1:]
    raise InputError(
        f"--input: {'x'.join(map(str, shape))} has {len(shape)} values, but a {dims}-D layer "
        f"takes {dims} spatial sizes, optionally preceded by channels"
    )


def _size_report(
    spec: _Layer,
    input: str,
    kernel: str,
    count_include_pad: bool,
    out_channels: int | None,
    groups: int,
) -> dict[str, Any]:
    from cnnkit.arith import sizes
    from cnnkit.arith.explain import formula, rule

    op = spec.op
    pad = 0 if spec.padding is None else spec.padding
    ops = 0 if spec.output_padding is None else spec.output_padding
    try:
        geo = sizes.layer(op, spec.spatial, spec.kernel, spec.stride, pad, spec.dilation, ops,
                          spec.ceil_mode)  # fmt: skip
    except InputError:
        raise
    except Exception as err:  # ShapeError: say which option combination failed
        raise type(err)(f"--input {input} with --kernel {kernel}: {err}") from None
    in_shape, out_shape = _shapes(spec, geo.output, out_channels)
    params, macs = _counts(spec, geo.output, out_channels, groups)
    return {
        "layer": op,
        "dims": len(spec.spatial),
        "input": in_shape,
        "output": out_shape,
        "rule": rule(op, geo.ceil_mode),
        "padding_mode": geo.padding_mode,
        "ceil_mode": geo.ceil_mode,
        "axes": [
            {
                "name": name,
                "input": a.input,
                "kernel": a.kernel,
                "stride": a.stride,
                "dilation": a.dilation,
                "padding": list(a.pad),
                "output_padding": a.output_padding,
                "output": a.output,
                "formula": formula(op, a, geo.ceil_mode),
                "unread": a.unread,
                "trailing_unread": a.trailing_unread,
                "dropped": a.dropped,
            }
            for name, a in zip(spec.names, geo.axes)
        ],
        "params": params,
        "macs": macs,
        "flops": None if macs is None else 2 * macs,
        "warnings": _warnings(op, spec.names, geo.axes),
        "notes": _notes(op, geo.notes, count_include_pad),
    }


def _warnings(op: str, names: tuple[str, ...], axes: Sequence[Any]) -> list[str]:
    """One warning per distinct message: "along H and W" rather than the same line twice."""
    from cnnkit.arith.explain import unread_warning

    grouped: dict[str, list[str]] = {}
    for name, a in zip(names, axes):
        if (msg := unread_warning(op, "{axis}", a)) is not None:
            grouped.setdefault(msg, []).append(name)
    return [msg.replace("{axis}", " and ".join(axes)) for msg, axes in grouped.items()]


def _notes(op: str, notes: Sequence[str], count_include_pad: bool) -> list[str]:
    out = list(notes)
    if op == "avgpool":
        out.append(
            "count_include_pad="
            + (
                "True: windows over padding divide by the full kernel size (PyTorch's default)"
                if count_include_pad
                else "False: windows over padding divide by the real pixels"
            )
        )
    return out


def _shapes(
    spec: _Layer, output: tuple[int, ...], out_channels: int | None
) -> tuple[list[int], list[int | None]]:
    """Input and output shapes, with channels when ``--input`` gave them (a conv's output
    channels are ``out_channels``, None when not given)."""
    if spec.channels is None:
        return list(spec.spatial), list(output)
    out = out_channels if spec.op in ("conv", "convtranspose") else spec.channels
    return [spec.channels, *spec.spatial], [out, *output]


def _counts(
    spec: _Layer, output: tuple[int, ...], out_channels: int | None, groups: int
) -> tuple[dict[str, int] | None, int | None]:
    """Parameters and MACs of a conv or transposed conv with ``--out-channels``."""
    from cnnkit.arith import counts

    op, channels = spec.op, spec.channels
    if op not in ("conv", "convtranspose"):
        if out_channels is not None:
            raise InputError("--out-channels applies to conv and convtranspose layers")
        if groups != 1:
            raise InputError("--groups applies to conv and convtranspose layers")
        return None, None
    if out_channels is None:
        return None, None
    if channels is None:
        raise InputError(
            "--out-channels needs the input channels: give --input as C x spatial, e.g. 3x224x224"
        )
    if out_channels < 1:
        raise InputError(f"--out-channels: expected a positive integer, got {out_channels}")
    counts.check_groups(channels, out_channels, groups)
    ks = _full(spec.kernel, len(spec.spatial))
    if op == "conv":
        weights = counts.conv_weights(channels, out_channels, ks, groups)
        macs = counts.conv_macs(channels, out_channels, ks, output, groups)
    else:
        weights = counts.conv_weights(out_channels, channels, ks, groups)
        macs = counts.transposed_macs(channels, out_channels, ks, spec.spatial, groups)
    params = {
        "weights": weights,
        "bias": out_channels,
        "total_with_bias": weights + out_channels,
        "total_without_bias": weights,
    }
    return params, macs


def _full(values: tuple[int, ...], nd: int) -> tuple[int, ...]:
    return values * nd if len(values) == 1 else values


def _fixed_per_axis(spec: _Layer) -> list[tuple[int | str | None, int | None]]:
    """The --padding and --output-padding a --target search must keep (None: search them)."""
    nd = len(spec.spatial)
    pads: tuple[int | str | None, ...] = (None,) * nd
    if isinstance(spec.padding, str):
        pads = (spec.padding,) * nd
    elif spec.padding is not None:
        pads = _full(spec.padding, nd)
    out_pads = (None,) * nd if spec.output_padding is None else _full(spec.output_padding, nd)
    if len(pads) != nd or len(out_pads) != nd:
        raise InputError(f"--padding/--output-padding: give 1 or {nd} values")
    return list(zip(pads, out_pads))


def _solve_report(spec: _Layer, target: str) -> dict[str, Any]:
    from cnnkit.arith.solve import RANGES, solve
    from cnnkit.parsing import parse_ints

    op, nd = spec.op, len(spec.spatial)
    targets = _full(parse_ints("--target", target), nd)
    ks, ds = _full(spec.kernel, nd), _full(spec.dilation, nd)
    strides = _full(spec.stride, nd) if spec.stride is not None else (None,) * nd
    if len(targets) != nd or len(ks) != nd or len(ds) != nd or len(strides) != nd:
        raise InputError(f"--target/--kernel/--stride/--dilation: give 1 or {nd} values")
    ceil = spec.ceil_mode if spec.ceil_mode else None
    axes = []
    for name, n, k, s, d, t, (p, o) in zip(
        spec.names, spec.spatial, ks, strides, ds, targets, _fixed_per_axis(spec)
    ):
        found = solve(op, n, k, t, s, d, ceil, p, o)
        axes.append(
            {
                "name": name,
                "input": n,
                "kernel": k,
                "dilation": d,
                "stride": s,
                "padding": p,
                "output_padding": o,
                "target": t,
                "searched": RANGES[op],
                "solutions": [x.to_dict() for x in found],
            }
        )
    return {"layer": op, "dims": nd, "target": list(targets), "axes": axes}


def numeric_report(
    x: str,
    w: str,
    *,
    bias: str | None = None,
    xcorr: bool = False,
    padding: Size = "0",
    stride: Size = "1",
    dilation: Size = "1",
    explain: str | None = None,
) -> dict[str, Any]:
    """``cnnkit conv --x X --w W``'s ``--json`` document: the geometry, the output grid and,
    with ``explain="I,J"``, the products summed for that output element."""
    from cnnkit.arith.literals import parse_array
    from cnnkit.arith.numeric import convolve
    from cnnkit.arith.numeric import explain as explain_element
    from cnnkit.parsing import parse_index, parse_ints, parse_padding

    xa, wa = parse_array("--x", x), parse_array("--w", w)
    bias_values = _parse_bias(bias)
    options: dict[str, Any] = {
        "flip": not xcorr,
        "padding": parse_padding("--padding", _text(padding) or "0"),
        "stride": parse_ints("--stride", _text(stride) or "1"),
        "dilation": parse_ints("--dilation", _text(dilation) or "1"),
    }
    result = convolve(xa.values, wa.values, bias_values, **options)
    detail = None
    if explain is not None:
        index = parse_index("--explain", explain)
        detail = explain_element(xa.values, wa.values, index, bias_values, **options)
    return {
        "operation": result.operation,
        "input_shape": list(result.input_shape),
        "kernel_shape": list(result.kernel_shape),
        "bias": None if result.bias is None else list(result.bias),
        "mode": result.mode,
        "padding": [list(pad) for pad in result.padding],
        "stride": list(result.stride),
        "dilation": list(result.dilation),
        "output_shape": list(result.output_shape),
        "output": result.output,
        "notes": list(result.notes),
        "explain": None if detail is None else _explain_document(detail),
    }


def _parse_bias(text: str | None) -> list[Any] | None:
    from cnnkit.arith.literals import parse_array, shape_text

    if text is None:
        return None
    array = parse_array("--bias", text)
    if array.rank != 1:
        raise InputError(
            f'--bias: expected one value per filter (like 0.5 or "1 -1"), got a '
            f"{shape_text(array.shape)} array"
        )
    return array.values


def _explain_document(detail: Any) -> dict[str, Any]:
    return {
        "index": list(detail.index),
        "terms": [
            {
                "input_index": list(t.input_index),
                "input": t.input,
                "weight_index": list(t.weight_index),
                "weight": t.weight,
                "product": t.product,
            }
            for t in detail.terms
        ],
        "bias": detail.bias,
        "value": detail.value,
        "padding_taps": detail.padding_taps,
    }
