"""A rich table laid out as plain lines, for a console that prints no styles (a pipe, a file).

rich renders a table cell by cell (a padding, a text, its wrapping and justification, a crop
of its segments): about 50 microseconds a cell, which made a 5,000-row ``cnnkit params``
table cost three times its ``--json``. When nothing can show a style (no colour system, no
recording) and every cell is one line of plain text that fits its column, the layout is only
padding, justification and the box's characters: ``PlainRows`` writes those lines itself, in
one string per row, through the same console. Anything else (colour, markup, a folded cell,
a footer, vertical padding) is rich's own layout: the output is byte for byte what rich
writes, and tests/test_table_speed.py checks that against rich itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text

JUSTIFIED = frozenset({"default", "left", "right", "center"})


def plain_cell(cell: Any) -> str | None:
    """The text rich prints for a one-line cell, or None when rich has to lay it out."""
    if isinstance(cell, Text):
        text = cell.plain
        if cell.justify is not None:
            return None
    elif isinstance(cell, str):
        if "[" in cell or ":" in cell:  # markup, or an :emoji: code
            return None
        text = cell
    else:
        return None
    return text if text.isprintable() else None  # no newline, tab or control code


def _pads(table: Any, index: int) -> tuple[int, int]:
    """A column's left and right cell padding, as ``Table._get_cells`` computes them."""
    _, right, _, left = table.padding
    if table.collapse_padding and index:
        left = max(0, left - right)
    if not table.pad_edge:
        left = 0 if index == 0 else left
        right = 0 if index == len(table.columns) - 1 else right
    return left, right


def _justified(text: str, inner: int, justify: str) -> str | None:
    """``text`` in ``inner`` cells as rich's ``Lines.justify`` puts it (right and centre
    strip trailing spaces first), or None if it does not fit."""
    if justify in ("right", "center"):
        text = text.rstrip()
    gap = inner - cell_len(text)
    if gap < 0:
        return None
    if justify == "right":
        return " " * gap + text
    if justify == "center":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def _layable(console: Any, table: Any) -> bool:
    """Whether ``PlainRows`` may lay ``table`` out: nothing can show a style, and the table
    has no part whose layout is more than padding and justification."""
    top, _, bottom, _ = table.padding
    return (
        console.color_system is None
        and not console.record
        and bool(table.columns)
        and not (table.show_footer or table.show_lines or table.leading or top or bottom)
        and all(c.width is not None and c.justify in JUSTIFIED for c in table.columns)
    )


def _row_texts(table: Any, widths: list[int]) -> list[list[str]] | None:
    """Every row's cells as padded, justified strings (the header first), or None."""
    columns = table.columns
    rows: list[list[str]] = [[] for _ in range(len(table.rows) + table.show_header)]
    for index, (column, width) in enumerate(zip(columns, widths)):
        left, right = _pads(table, index)
        inner = width - left - right
        cells = [column.header, *column.cells] if table.show_header else list(column.cells)
        for row, cell in zip(rows, cells):
            text = plain_cell(cell)
            shown = None if text is None else _justified(text, inner, column.justify)
            if shown is None:
                return None
            row.append(" " * left + shown + " " * right)
    return rows


class PlainRows:
    """A renderable standing for ``table``: rich's own ``Table.__rich_console__`` with the
    cell-by-cell ``_render`` replaced by whole lines, when ``_layable`` allows."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        table = self.table
        lines = self._lines(console, options) if _layable(console, table) else None
        if lines is None:
            yield from table.__rich_console__(console, options)
            return
        width, body = lines
        render_options = options.update(width=width, highlight=table.highlight, height=None)
        if table.title:
            yield from _annotation(console, render_options, table.title, table.title_justify)
        for line in body:
            yield Segment(line)
            yield Segment.line()
        if table.caption:
            yield from _annotation(console, render_options, table.caption, table.caption_justify)

    def _lines(self, console: Any, options: Any) -> tuple[int, list[str]] | None:
        """The table's width and its lines, or None when rich must lay it out."""
        table = self.table
        try:  # rich's own widths: every column is fixed, so no cell is measured
            extra = table._extra_width
            widths = table._calculate_column_widths(
                console, options.update_width(options.max_width - extra)
            )
        except AttributeError:  # another rich
            return None
        if sum(widths) + extra > options.max_width:
            return None  # rich would shrink a column
        rows = _row_texts(table, widths)
        if rows is None:
            return None
        return sum(widths) + extra, _boxed(console, options, table, widths, rows)


def _annotation(console: Any, options: Any, text: Any, justify: Any) -> Iterator[Any]:
    """A title or caption, exactly as ``Table.__rich_console__`` renders it."""
    shown = console.render_str(text, highlight=False) if isinstance(text, str) else text
    yield from console.render(shown, options=options.update(justify=justify))


def _boxed(console: Any, options: Any, table: Any, widths: list[int], rows: list) -> list[str]:
    """The rows joined by the box's characters, with its edges and section lines."""
    box = table.box
    if box is None:
        return ["".join(row) for row in rows]
    safe = table.safe_box if table.safe_box is not None else console.safe_box
    box = box.substitute(options, safe=safe)
    box = box if table.show_header else box.get_plain_headed_box()
    edge = table.show_edge
    parts = [
        (box.head_left, box.head_vertical, box.head_right),
        (box.mid_left, box.mid_vertical, box.mid_right),
        (box.foot_left, box.foot_vertical, box.foot_right),
    ]
    lines = [box.get_top(widths)] if edge else []
    last = len(rows) - 1
    for index, row in enumerate(rows):
        left, divider, right = parts[0 if index == 0 else (2 if index == last else 1)]
        lines.append((left if edge else "") + divider.join(row) + (right if edge else ""))
        header = index == 0 and table.show_header
        if header:
            lines.append(box.get_row(widths, "head", edge=edge))
        elif index < last and table.rows[index - table.show_header].end_section:
            lines.append(box.get_row(widths, "row", edge=edge))
    if edge:
        lines.append(box.get_bottom(widths))
    return lines
