"""``cnnkit conv --x ... --w ...``: numeric convolution of small arrays, printed or as JSON.

Rendering only; the document is ``cnnkit.reports.conv.numeric_report`` and the arithmetic
``cnnkit.arith.numeric``. rich is imported inside the renderer, and nothing here imports torch
or numpy (numpy only loads for a .npy file).
"""

from __future__ import annotations

from typing import Any

from cnnkit.arith.literals import shape_text
from cnnkit.arith.numeric import Number
from cnnkit.cli.output import print_table

MAX_ROWS, MAX_COLUMNS = 24, 32  # at most; fewer columns when the terminal is narrower
OPERATION_TEXT = {
    "convolution": "true convolution (kernel flipped in every axis)",
    "cross-correlation": "cross-correlation (kernel not flipped: what nn.Conv computes)",
}


def run_numeric(*, as_json: bool, **options: Any) -> None:
    """Convolve (``numeric_report`` takes ``options``) and print the result (rich) or one
    JSON document."""
    from cnnkit.reports.conv import numeric_report

    doc = numeric_report(**options)
    if as_json:
        from cnnkit.cli.output import emit_json

        emit_json(doc)
    else:
        _render(doc)


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


def _idx(index: list[int]) -> str:
    return ",".join(map(str, index))


def explanation_lines(detail: dict[str, Any], several_filters: bool) -> list[str]:
    """``y[1,2] = x[1,2]*w[1,1] + ... = 3*1 + ... = 7`` over three aligned lines, from the
    document's ``explain``."""
    terms = detail["terms"]
    head = f"y[{_idx(detail['index'])}] = "
    symbols = [f"x[{_idx(t['input_index'])}]*w[{_idx(t['weight_index'])}]" for t in terms]
    numbers = [f"{_signed(t['input'])}*{_signed(t['weight'])}" for t in terms]
    p = detail["index"][0] if several_filters else 0
    if detail["bias"] != 0 or several_filters:
        symbols.append(f"b[{p}]")
        numbers.append(_signed(detail["bias"]))
    if not terms:
        symbols.insert(0, "0")
        numbers.insert(0, "0")
    pad = " " * (len(head) - 2)
    lines = [
        head + " + ".join(symbols),
        f"{pad}= " + " + ".join(numbers),
        f"{pad}= {fmt(detail['value'])}",
    ]
    if detail["padding_taps"]:
        lines.append(
            f"({detail['padding_taps']} kernel tap(s) fall on zero padding and add 0; left out)"
        )
    return lines


def _render(doc: dict[str, Any]) -> None:
    from rich.table import Table

    from cnnkit.cli.output import console

    out = console()
    out.print(f"[bold]{OPERATION_TEXT[doc['operation']]}[/]")
    names = ("L",) if len(doc["padding"]) == 1 else ("H", "W")
    pads = ", ".join(f"{n} {lo}+{hi}" for n, (lo, hi) in zip(names, doc["padding"]))
    mode = f" ({doc['mode']})" if doc["mode"] else ""
    out.print(
        f"x {shape_text(doc['input_shape'])} (*) w {shape_text(doc['kernel_shape'])} -> "
        f"output [bold]{shape_text(doc['output_shape'])}[/]"
    )
    out.print(
        f"padding {pads}{mode}; stride {shape_text(doc['stride'])}; "
        f"dilation {shape_text(doc['dilation'])}"
    )
    several = len(doc["kernel_shape"]) == 4
    planes = doc["output"] if several else [doc["output"]]
    for p, plane in enumerate(planes):
        bias = 0 if doc["bias"] is None else doc["bias"][p]
        if several:
            out.print(f"filter {p} (bias {fmt(bias)}):")
        elif doc["bias"] is not None:
            out.print(f"bias {fmt(bias)}:")
        table, cut = _grid(Table, plane, out.width)
        print_table(out, table)
        if cut:
            out.print("(the top-left corner only; --json prints every value)")
    for note in doc["notes"]:
        out.print(f"note: {note}", markup=False)
    if doc["explain"] is not None:
        for line in explanation_lines(doc["explain"], several):
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
