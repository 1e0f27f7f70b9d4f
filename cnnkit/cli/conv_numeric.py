"""``cnnkit conv --x ... --w ...``: numeric convolution of small arrays, printed or as JSON.

Parsing and rendering only; the arithmetic is ``cnnkit.arith.numeric``. rich is imported inside
the renderer, and nothing here imports torch or numpy (numpy only loads for a .npy file).
"""

from __future__ import annotations

from typing import Any

from cnnkit.arith.literals import parse_array, shape_text
from cnnkit.arith.numeric import ConvResult, Explanation, Number, convolve
from cnnkit.arith.numeric import explain as explain_element
from cnnkit.cli.output import print_table
from cnnkit.errors import InputError
from cnnkit.parsing import parse_index, parse_ints, parse_padding

MAX_ROWS, MAX_COLUMNS = 24, 32  # at most; fewer columns when the terminal is narrower
OPERATION_TEXT = {
    "convolution": "true convolution (kernel flipped in every axis)",
    "cross-correlation": "cross-correlation (kernel not flipped: what nn.Conv computes)",
}


def run_numeric(
    *,
    x: str,
    w: str,
    bias: str | None,
    xcorr: bool,
    padding: str,
    stride: str,
    dilation: str,
    explain: str | None,
    as_json: bool,
) -> None:
    """Parse the options, convolve, and print the result (rich) or one JSON document."""
    xa, wa = parse_array("--x", x), parse_array("--w", w)
    bias_values = _parse_bias(bias)
    options: dict[str, Any] = {
        "flip": not xcorr,
        "padding": parse_padding("--padding", padding),
        "stride": parse_ints("--stride", stride),
        "dilation": parse_ints("--dilation", dilation),
    }
    result = convolve(xa.values, wa.values, bias_values, **options)
    detail = None
    if explain is not None:
        index = parse_index("--explain", explain)
        detail = explain_element(xa.values, wa.values, index, bias_values, **options)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(document(result, detail))
    else:
        _render(result, detail)


def _parse_bias(text: str | None) -> list[Number] | None:
    if text is None:
        return None
    array = parse_array("--bias", text)
    if array.rank != 1:
        raise InputError(
            f'--bias: expected one value per filter (like 0.5 or "1 -1"), got a '
            f"{shape_text(array.shape)} array"
        )
    return array.values


def document(result: ConvResult, detail: Explanation | None) -> dict[str, Any]:
    """The ``--json`` document: the geometry, the output grid and the optional explanation."""
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


def _explain_document(detail: Explanation) -> dict[str, Any]:
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


def fmt(value: Number) -> str:
    """A number as a student writes it: 7 not 7.0, 0.5, -0 shown as 0."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def _signed(value: Number) -> str:
    text = fmt(value)
    return f"({text})" if text.startswith("-") else text


def _idx(index: tuple[int, ...]) -> str:
    return ",".join(map(str, index))


def explanation_lines(detail: Explanation, several_filters: bool) -> list[str]:
    """``y[1,2] = x[1,2]*w[1,1] + ... = 3*1 + ... = 7`` over three aligned lines."""
    head = f"y[{_idx(detail.index)}] = "
    symbols = [f"x[{_idx(t.input_index)}]*w[{_idx(t.weight_index)}]" for t in detail.terms]
    numbers = [f"{_signed(t.input)}*{_signed(t.weight)}" for t in detail.terms]
    p = detail.index[0] if several_filters else 0
    if detail.bias != 0 or several_filters:
        symbols.append(f"b[{p}]")
        numbers.append(_signed(detail.bias))
    if not detail.terms:
        symbols.insert(0, "0")
        numbers.insert(0, "0")
    pad = " " * (len(head) - 2)
    lines = [
        head + " + ".join(symbols),
        f"{pad}= " + " + ".join(numbers),
        f"{pad}= {fmt(detail.value)}",
    ]
    if detail.padding_taps:
        lines.append(
            f"({detail.padding_taps} kernel tap(s) fall on zero padding and add 0; left out)"
        )
    return lines


def _render(result: ConvResult, detail: Explanation | None) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    out.print(f"[bold]{OPERATION_TEXT[result.operation]}[/]")
    names = ("L",) if len(result.padding) == 1 else ("H", "W")
    pads = ", ".join(f"{n} {lo}+{hi}" for n, (lo, hi) in zip(names, result.padding))
    mode = f" ({result.mode})" if result.mode else ""
    out.print(
        f"x {shape_text(result.input_shape)} (*) w {shape_text(result.kernel_shape)} -> "
        f"output [bold]{shape_text(result.output_shape)}[/]"
    )
    out.print(
        f"padding {pads}{mode}; stride {shape_text(result.stride)}; "
        f"dilation {shape_text(result.dilation)}"
    )
    several = len(result.kernel_shape) == 4
    planes = result.output if several else [result.output]
    for p, plane in enumerate(planes):
        bias = 0 if result.bias is None else result.bias[p]
        if several:
            out.print(f"filter {p} (bias {fmt(bias)}):")
        elif result.bias is not None:
            out.print(f"bias {fmt(bias)}:")
        table, cut = _grid(Table, plane, out.width)
        print_table(out, table)
        if cut:
            out.print("(the top-left corner only; --json prints every value)")
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    if detail is not None:
        for line in explanation_lines(detail, several):
            out.print(line, markup=False)


def _grid(table_cls: Any, plane: list[Any], screen: int) -> tuple[Any, bool]:
    """A rich table of one output plane with zero-based indices, and whether it was cut.

    A plane wider or longer than the terminal shows its top-left corner only, so no cell is
    ever squeezed into an ellipsis; ``--json`` has every value.
    """
    rows = plane if isinstance(plane[0], list) else [plane]
    label = len(str(len(rows) - 1)) if rows is plane else 0
    shown_rows = rows[:MAX_ROWS]
    cell = max(len(fmt(v)) for row in shown_rows for v in row[:MAX_COLUMNS])
    fit = (screen - label - 3) // (max(cell, len(str(MAX_COLUMNS)), 3) + 3)
    width = len(rows[0])
    columns = width if width <= min(fit, MAX_COLUMNS) else max(1, min(MAX_COLUMNS, fit) - 1)
    more = ["..."] if columns < width else []
    table = table_cls(show_edge=False)
    table.add_column("", style="dim", justify="right")
    for j in range(columns):
        table.add_column(str(j), justify="right")
    for _ in more:
        table.add_column("...")
    for i, row in enumerate(shown_rows):
        table.add_row(str(i) if rows is plane else "", *[fmt(v) for v in row[:columns]], *more)
    if len(rows) > MAX_ROWS:
        table.add_row("...", *["..."] * (columns + len(more)))
    return table, bool(more) or len(rows) > MAX_ROWS
