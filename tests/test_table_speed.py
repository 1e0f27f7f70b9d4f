"""Big tables in linear time (issue 16): ``print_table`` sizes the columns from the cell
strings once, and rich lays out exactly the table it would have laid out itself.

No test times anything: the guards count calls (rich's measuring per cell, the rf table's
set of shown names), and rich's own rendering of the same table is the oracle for the bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

SETTINGS = [
    {},
    {"box": None, "pad_edge": False, "header_style": "bold"},
    {"show_edge": False},
    {"padding": (0, 2)},
    {"title": "a title wider than every column of this small table", "title_justify": "left"},
    {"box": "ASCII2", "show_header": False, "caption": "a caption: [i]marked[/]"},
    {"box": "SIMPLE", "collapse_padding": True, "padding": (0, 1, 0, 3)},
    {"box": "ROUNDED", "min_width": 90},
    {"box": "MINIMAL_DOUBLE_HEAD", "expand": True},
    {"show_lines": True, "padding": (1, 1)},
]
MODES = ["pipe", "terminal", "terminal without colour"]
ALPHABET = "ab1,.-x[]:/ \n\t\r宽é\u0301"
CELLS = [
    "features.denseblock1.conv1",
    "1,428,376,960",
    "-",
    "",
    "[bold]marked[/] up",  # markup: rich prints "marked up"
    "a [not markup",
    ":smile: code",  # an emoji code rich replaces
    "two\nlines",
    "宽字符",  # two cells a character
    "64x55x55",
]


def _build(rows: list[list[Any]], settings: dict, min_width: int | None = None) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if isinstance(settings.get("box"), str):
        settings = {**settings, "box": getattr(box, settings["box"])}
    table = Table(**settings)
    for index in range(len(rows[0])):
        table.add_column(f"col{index}", justify="right" if index % 2 else "left")
    if min_width is not None:
        table.columns[-1].min_width = min_width
    for number, row in enumerate(rows):
        cells = [Text(c, style="italic") if number % 3 == 2 else c for c in row]
        if number == len(rows) - 1 and number:
            table.add_section()  # a totals row
        table.add_row(*cells, style="bold" if number == len(rows) - 1 else None)
    return table


def _console(mode: str, width: int = 80) -> Any:
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=width,
        force_terminal=mode != "pipe",
        color_system="standard" if mode == "terminal" else None,
        soft_wrap=mode == "pipe",
        highlight=False,
    )


def _rich_itself(make: Callable[[], Any], mode: str, width: int) -> str:
    """The oracle: rich measuring and laying out the table on its own (after the same
    fold/no-wrap marking print_table does), at the width print_table chose."""
    from rich.measure import Measurement

    from cnnkit.cli.output import _prepare

    out, table = _console(mode, width), make()
    _prepare(table)
    if mode == "pipe":
        wide = out.options.update_width(1_000_000)
        out.width = max(out.width, Measurement.get(out, wide, table).maximum)
    out.print(table)
    return out.file.getvalue()


def _ours(make: Callable[[], Any], mode: str, width: int) -> str:
    from cnnkit.cli.output import print_table

    out = _console(mode, width)
    print_table(out, make())
    return out.file.getvalue()


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("min_width", [None, 30])
def test_print_table_writes_the_bytes_rich_writes_when_the_table_fits(settings, mode, min_width):
    rows = [CELLS[i : i + 4] for i in range(0, len(CELLS) - 3)]
    make = lambda: _build(rows, settings, min_width)  # noqa: E731
    width = 400  # fits: nothing folds, no column is dropped
    assert _ours(make, mode, width) == _rich_itself(make, mode, width)


@given(
    st.lists(
        st.lists(st.text(st.sampled_from(ALPHABET), max_size=12), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(SETTINGS),
    st.sampled_from(MODES),
)
def test_any_cells_print_as_rich_prints_them(rows, settings, mode):
    from rich.errors import MarkupError

    make = lambda: _build(rows, settings)  # noqa: E731
    try:
        expected = _rich_itself(make, mode, 300)
    except MarkupError:  # rich refuses the cell itself; print_table must not do better
        with pytest.raises(MarkupError):
            _ours(make, mode, 300)
        return
    assert _ours(make, mode, 300) == expected


def _measured_cells(rows: int, mode: str, monkeypatch) -> int:
    """How many renderables rich measures while print_table prints a ``rows``-row table."""
    from rich.measure import Measurement

    calls = []
    real = Measurement.get.__func__

    def counting(cls, console, options, renderable):
        calls.append(renderable)
        return real(cls, console, options, renderable)

    monkeypatch.setattr(Measurement, "get", classmethod(counting))
    body = [[f"layer{i}.conv", "conv", f"{i * 1000:,}", "8x16x16"] for i in range(rows)]
    _ours(lambda: _build(body, SETTINGS[1]), mode, 120)
    monkeypatch.undo()
    return len(calls)


@pytest.mark.parametrize("mode", MODES)
def test_rich_measures_no_cell_of_a_text_table(mode, monkeypatch):
    """Before issue 16, rich measured every cell two or three times (once for print_table's
    own sizing, again to lay the table out): 5,000 rows took 3-4x the JSON path. Now the
    cell strings are measured once by print_table and rich measures none of them."""
    few, many = (_measured_cells(n, mode, monkeypatch) for n in (10, 400))
    assert few == many  # nothing measured per row
    assert many <= 2  # at most the table itself, never its cells


def test_a_table_that_must_fold_is_still_rich_s_to_lay_out():
    """On a narrow terminal text folds: rich chooses the widths (no fixed width is set)."""
    from cnnkit.cli.output import print_table

    rows = [["features.denseblock4.denselayer16.conv2", "conv", "1,428,376,960"]] * 3
    table = _build(rows, {})
    out = _console("terminal", 36)
    print_table(out, table)
    assert all(column.width is None for column in table.columns)
    assert "1,428,376,960" in out.file.getvalue()


@pytest.mark.parametrize("mode", MODES)
def test_rich_renders_no_cell_where_no_style_can_show(mode, monkeypatch):
    """A pipe (or a terminal without colour) gets whole lines, not rich's cell-by-cell
    render (about 50 us a cell); with colour, rich renders. Same bytes either way (above)."""
    from rich.table import Table

    rendered = []
    real = Table._render
    monkeypatch.setattr(
        Table, "_render", lambda self, *a: rendered.append(1) or (yield from real(self, *a))
    )
    body = [[f"layer{i}", "conv", f"{i:,}"] for i in range(50)]
    for settings in SETTINGS[:3]:
        _ours(lambda s=settings: _build(body, s), mode, 200)
    assert len(rendered) == (3 if mode == "terminal" else 0)


def _chain_report(layers: int) -> dict[str, Any]:
    from cnnkit.reports.rf import rf_report
    from cnnkit.targets import layers_recipe

    text = "; ".join(["conv k=3 p=1", "relu"] * (layers // 2))
    return rf_report(layers_recipe(text, "64"), all_layers=False)


def test_the_rf_table_builds_its_set_of_shown_names_once(monkeypatch):
    """The set of shown names was built again for every row (2.29 s at 10,002 rows)."""
    from cnnkit.cli import rf

    report = _chain_report(300)
    calls = []
    real = rf.shown_names
    monkeypatch.setattr(rf, "shown_names", lambda r: calls.append(1) or real(r))
    table = rf._table(report)
    assert len(calls) == 1
    expected = [layer["name"] for layer in report["layers"] if layer["name"] in report["shown"]]
    assert list(table.columns[0].cells) == expected  # brute force: the list, filtered
    convs = [layer["name"] for layer in report["layers"] if layer["kind"] == "conv"]
    assert expected == [*convs, report["layers"][-1]["name"]]  # pointwise ones hidden, but the last
