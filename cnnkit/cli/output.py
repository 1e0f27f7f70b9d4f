"""Rendering helpers shared by the commands: JSON on stdout, rich on stdout, errors on stderr.

Library code returns data; only the CLI renders, through these functions. Two rules hold for
every command: a pipe or a file gets whole lines (no wrap at rich's default 80 columns), and a
table never cuts a number (narrow terminals fold text and drop columns, never digits).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import re
import sys
from collections.abc import Iterator
from typing import Any

_DIGIT = re.compile(r"[0-9]")
_NO_VALUE = frozenset({"n/a", "na", "nan", "inf", "-inf", "none", "null"})
TEXT_FLOOR = 8  # a text column is folded down to this width, not below, before columns go


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while a command loads and analyses a recipe.

    A graph is many small objects that all stay alive, and every full collection walks all of
    them again; with the analysis's temporaries surviving long enough to trigger several, a
    20,000-node chain spent a third of ``cnnkit rf``'s time in them and the time grew faster
    than the graph (bench/analysis_scaling.py, bench/RESULTS.md). Reference counting still
    frees everything the analysis drops; the collector's previous state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout and nothing else (the ``--json`` contract).

    NaN and infinities (a diverged loss, an undefined metric) become ``null``: Python's
    ``NaN``/``Infinity`` tokens are not JSON and strict parsers (jq, JavaScript) reject them.
    A pipe or a file gets one compact line (json's C encoder: a program reads it, and a big
    document encodes twice as fast); a terminal gets it indented by 2, for a person. The
    document is the same either way.
    """
    from cnnkit.jsonsafe import dumps

    on_terminal = bool(getattr(sys.stdout, "isatty", lambda: False)())
    sys.stdout.write(dumps(document, indent=2 if on_terminal else None) + "\n")


@functools.cache
def _console_class() -> type:
    from rich.console import Console

    class PipeAwareConsole(Console):
        """rich exits with status 1 when the reader of a pipe leaves (``| head``), which reads
        as a failed gate; raise instead, so ``cnnkit.cli.app.main`` exits quietly with 141."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "the reader of the pipe left")

    return PipeAwareConsole


def console(stderr: bool = False):  # -> rich.console.Console, imported lazily for start-up time
    """A rich console for stdout (or stderr). Off a terminal (a pipe, a file, a log) lines are
    never wrapped: a reader such as grep or a log viewer gets each line whole."""
    stream = sys.stderr if stderr else sys.stdout
    on_terminal = bool(getattr(stream, "isatty", lambda: False)())
    return _console_class()(stderr=stderr, highlight=False, soft_wrap=not on_terminal)


def _plain(cell: Any) -> str:
    if isinstance(cell, str) and "[" not in cell and ":" not in cell:
        return cell  # no markup, no :emoji: code: as rich prints it, without parsing markup
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:  # not valid markup: rich prints it as it is
            return cell
    return ""


def _is_number(text: str) -> bool:
    return bool(_DIGIT.search(text)) and sum(ch.isalpha() for ch in text) <= 3


def _is_blank(text: str) -> bool:  # "", "-", "—", "n/a": a cell that stands for no value
    return not any(ch.isalnum() for ch in text) or text.lower() in _NO_VALUE


def is_numeric(cells: list[Any]) -> bool:
    """A column of numbers (``61,100,840``, ``1.2 GiB``, ``64x55x55``, ``12.5%``): every cell
    is blank or has a digit and at most three letters (a unit). Never folded, never cut."""
    return all(_is_number(t) or _is_blank(t) for t in (_plain(c).strip() for c in cells))


def _sized_by_text(column: Any) -> bool:
    """Whether rich's width for every cell of a column is the widest line of its text, which
    ``_content_widths`` computes without rich: ``Text`` and strings with no markup or
    ``:emoji:`` code, no tab and no control code (rich strips those; newlines split lines)."""
    return all(_text_sized(c) for c in [column.header, *column.cells])


def _text_sized(cell: Any) -> bool:
    from rich.text import Text

    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str) and "[" not in cell and ":" not in cell:
        text = cell
    else:
        return False
    return text.replace("\n", "").isprintable()


def _shown_cells(table: Any, column: Any) -> list[Any]:
    """The cells rich lays out in a column: the header and footer only when shown."""
    return [
        *([column.header] if table.show_header else []),
        *column.cells,
        *([column.footer] if table.show_footer else []),
    ]


def _text_width(text: str) -> int:
    from rich.cells import cell_len

    return max(map(cell_len, text.splitlines()), default=0)  # Text.__rich_measure__'s maximum


def _content_widths(out: Any, table: Any) -> dict[int, int]:
    """Each column's widest cell (its header included), padding excluded, measured once: from
    the cell strings for text columns, by rich for any other renderable. One pass over the
    cells, so a table of N rows costs O(N) here and rich measures nothing again (see
    ``_fix_widths``)."""
    from rich.measure import Measurement

    wide = out.options.update_width(1_000_000)
    widths = {}
    for column in table.columns:
        cells = _shown_cells(table, column)
        if _sized_by_text(column):
            widths[id(column)] = max((_text_width(_plain(c)) for c in cells), default=0)
        else:
            widths[id(column)] = max(
                (Measurement.get(out, wide, c).maximum for c in cells), default=0
            )
    return widths


def _clamped(column: Any, width: int) -> int:
    """A column's content width within its ``min_width``/``max_width`` (rich's clamp)."""
    if column.min_width is not None:
        width = max(width, column.min_width)
    return width if column.max_width is None else min(width, column.max_width)


def _natural_width(out: Any, table: Any, widths: dict[int, int]) -> int:
    """The width rich gives ``table`` when nothing has to fold: every column at its widest
    cell, plus borders and padding (rich's ``Table.__rich_measure__`` maximum)."""
    if table.collapse_padding:  # rich's padding sums disagree with its cells: ask rich
        from rich.measure import Measurement

        return Measurement.get(out, out.options.update_width(1_000_000), table).maximum
    content = sum(_clamped(c, widths[id(c)]) for c in table.columns)
    whole = content + _frame(out, table, widths)
    return whole if table.min_width is None else max(whole, table.min_width)


def _fix_widths(table: Any, widths: dict[int, int]) -> None:
    """Give each text column its measured width, so that rich does not measure every cell
    again (twice: once to size the table, once to lay it out). Only for a table that fits:
    a fixed width is what rich would have chosen then, and the output is the same bytes."""
    if table.expand or table.width is not None or table.collapse_padding:
        return  # rich spreads the columns over a given width, or sizes padding its own way
    for column in table.columns:
        if column.width is None and _sized_by_text(column):
            column.width = _clamped(column, widths[id(column)])


def _fits_in(out: Any, table: Any, widths: dict[int, int]) -> int:
    """The narrowest width ``table`` can take without cutting a number: numeric columns whole,
    text columns folded to ``TEXT_FLOOR`` (or their own width, if narrower), plus rich's
    borders and padding."""
    least = sum(
        widths[id(c)] if c.no_wrap else min(widths[id(c)], TEXT_FLOOR) for c in table.columns
    )
    return least + _frame(out, table, widths)


def _frame(out: Any, table: Any, widths: dict[int, int]) -> int:
    """The width of rich's borders and cell padding around ``table``'s columns."""
    try:  # rich's own account of borders and padding (private, but stable since rich 10)
        return table._extra_width + sum(
            table._get_padding_width(i) for i in range(len(table.columns))
        )
    except AttributeError:  # another rich: measure the whole table instead
        from rich.measure import Measurement

        whole = Measurement.get(out, out.options.update_width(1_000_000), table).maximum
        return whole - sum(widths[id(c)] for c in table.columns)


def _prepare(table: Any) -> None:
    for column in table.columns:
        if is_numeric(list(column.cells)):
            column.no_wrap = True  # rich never shrinks a no_wrap column while the table fits
        else:
            column.no_wrap = False
            column.overflow = "fold"  # a long name breaks over lines; never "…"


def _plain_rows(table: Any) -> Any:
    """``table`` as rich prints it; laid out line by line where no style can show (see
    ``cnnkit.cli.plain_table``)."""
    from cnnkit.cli.plain_table import PlainRows

    return PlainRows(table)


def print_table(out: Any, table: Any) -> None:
    """Print a rich table on ``out`` without cutting a number.

    Numeric columns keep their full width; text columns fold. When even folded text does not
    fit the terminal, the rightmost columns are dropped (one dim line names them; ``--json``
    has everything). Off a terminal (a pipe, a file, a log) the table is printed as wide as it
    needs, whatever ``COLUMNS`` says: no reader of a file benefits from a dropped column.
    """
    _prepare(table)
    widths = _content_widths(out, table)
    if not out.is_terminal:
        out.width = max(out.width, _natural_width(out, table, widths))
        _fix_widths(table, widths)
        out.print(_plain_rows(table))
        return
    dropped = []
    while len(table.columns) > 1 and _fits_in(out, table, widths) > out.width:
        dropped.insert(0, str(_plain(table.columns[-1].header)) or "?")
        table.columns.pop()
        for index, column in enumerate(table.columns):
            column._index = index  # rich reads a column's place from here
    if _fits_in(out, table, widths) > out.width:  # one column wider than the screen
        out.width = _fits_in(out, table, widths)  # the terminal wraps its lines
    if _natural_width(out, table, widths) <= out.width:  # nothing folds: rich need not measure
        _fix_widths(table, widths)
    out.print(_plain_rows(table))
    if dropped:
        out.print(
            f"({len(dropped)} column{'s' if len(dropped) > 1 else ''} left out to fit "
            f"{out.width} columns: {', '.join(dropped)}; a wider terminal or --json shows them)",
            style="dim",
            markup=False,
            highlight=False,
        )


def print_confusion(out: Any, report: dict[str, Any], title: str) -> None:
    """A report's confusion matrix (rows: true, columns: predicted; zeros as dots) as a table,
    the classes named by the report's ``per_class`` rows."""
    from rich.table import Table

    confusion = Table(title=f"{title} (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for row in report["per_class"]:
        confusion.add_column(row["class"], justify="right")
    for row, counts in zip(report["per_class"], report["confusion"]):
        confusion.add_row(row["class"], *(str(c) if c else "." for c in counts))
    print_table(out, confusion)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (see ``cnnkit.atomic``)."""
    from cnnkit.atomic import write_text

    write_text(path, text)
