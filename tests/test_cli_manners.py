"""A well-mannered command-line tool (issue 12): closed pipes, whole lines, uncut numbers,
completion, help that points at the installed guide.

Every check runs the real console script in a subprocess: a pipe whose reader is gone, a pipe
with no terminal width, or a pseudo-terminal of 40, 80 or 120 columns (what a user sees).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainkit import tiny_recipe

ROOT = Path(__file__).resolve().parents[1]
CNNKIT = [sys.executable, "-m", "cnnkit"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NUMBER = re.compile(r"\d[\d,.]*")
GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(extra)
    return env


def piped(*args: str) -> subprocess.CompletedProcess:
    """``cnnkit ARGS`` with stdout a pipe and no terminal width anywhere (a script, a file)."""
    return subprocess.run(
        [*CNNKIT, *args], capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300
    )


def on_terminal(columns: int, *args: str) -> str:
    """What ``cnnkit ARGS`` shows in a terminal ``columns`` wide (a pseudo-terminal)."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = _env(COLUMNS=str(columns), LINES="50", TERM="xterm", NO_COLOR="1")
    child = subprocess.Popen(
        [*CNNKIT, *args], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=300) in (0, 1), b"".join(chunks)[-500:]
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


# --- a closed pipe --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["params", "resnet50"],
        ["params", "resnet50", "--json"],
        ["params", "alexnet", "--max-params", "1"],  # a failed gate, but nobody reads it
        ["rf", "densenet121"],
        ["recipes"],
        ["conv", "--input", "3x224x224", "--kernel", "3"],
        ["--help"],
        ["--version"],
    ],
)
def test_a_closed_pipe_exits_quietly_with_141(args):
    """The reader left before cnnkit wrote (`| head` that already quit): no traceback, no
    "Exception ignored", and 141 (128 + SIGPIPE), not 1 (a failed gate) as rich and click say."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*CNNKIT, *args], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141


def test_head_reads_one_line_and_cnnkit_stops_quietly():
    child = subprocess.Popen(
        [*CNNKIT, "rf", "densenet121", "--all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    assert child.stdout.readline()
    child.stdout.close()  # what `| head -1` does
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) in (0, 141)  # 0 when all of it fitted in the pipe
    assert err == ""


# --- a pipe gets whole lines and whole tables --------------------------------------------


def test_a_pipe_gets_each_note_on_one_line():
    args = ["conv", "--input", "3x224x224", "--kernel", "3", "--stride", "2", "--padding", "same"]
    notes = json.loads(piped(*args, "--json").stdout)["notes"]
    assert notes and max(map(len, notes)) > 80  # long enough that a wrap at 80 would show
    lines = piped(*args).stdout.splitlines()
    for note in notes:
        assert f"note: {note}" in lines, note


def test_a_pipe_gets_every_row_of_a_table_on_one_line():
    doc = json.loads(piped("params", "resnet50", "--json").stdout)
    out = piped("params", "resnet50").stdout
    assert "…" not in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for layer in doc["layers"]:
        line = rows[layer["name"]]
        for key in ("params", "macs", "activations"):
            shown = f"{layer[key]:,}" if layer[key] else "-"
            assert f" {shown}" in line, (layer["name"], key)


def test_a_pipe_ignores_columns_for_tables():
    """COLUMNS=40 in a script's environment: a file still gets every column of every row."""
    done = subprocess.run(
        [*CNNKIT, "params", "alexnet"],
        capture_output=True,
        text=True,
        env=_env(COLUMNS="40"),
        cwd=ROOT,
    )
    assert "left out" not in done.stdout and "…" not in done.stdout
    (total,) = [line for line in done.stdout.splitlines() if line.startswith("total ")]
    assert "61,100,840" in total and "4,429,728" in total  # params ... act. bytes


def test_a_wide_receptive_field_table_is_not_cut_in_a_pipe():
    out = piped("rf", "densenet121").stdout
    assert "…" not in out
    doc = json.loads(piped("rf", "densenet121", "--json").stdout)
    fields = {row["name"]: row["receptive_field"] for row in doc["layers"]}
    for name in ("features.conv0", "features.denseblock4.denselayer16.conv2"):
        (line,) = [x for x in out.splitlines() if f" {name} " in x]
        assert str(fields[name][0]) in line


# --- a terminal: numbers are never cut ----------------------------------------------------


def _numbers(text: str) -> set[str]:
    return {n.rstrip(".") for n in NUMBER.findall(text)}


DROPPED = re.compile(r"\(\d+\s+columns?\s+left\s+out\s+to\s+fit\s.*?shows\s+them\)", re.DOTALL)


def _assert_no_number_cut(narrow: str, wide: str, columns: int) -> None:
    assert "…" not in narrow, narrow
    narrow = DROPPED.sub("", narrow)  # the note naming dropped columns ("8, 9")
    cut = sorted(n for n in _numbers(narrow) if "," in n and n not in _numbers(wide))
    assert not cut, (columns, cut)  # "61," or "61,10" of "61,100,840"
    for line in narrow.splitlines():
        if "│" in line or "┃" in line:  # a boxed table's row fits the terminal
            assert len(line) <= columns, (columns, line)


PURE = [
    ["params", "resnet50"],
    ["params", "alexnet"],
    ["params", "densenet121"],
    ["rf", "vgg16"],
    ["conv", "--input", "3x224x224", "--kernel", "11", "--stride", "4", "-o", "96"],
    ["conv", "--input", "28x28", "--kernel", "5", "--target", "28"],
]


@pytest.mark.parametrize("columns", [40, 80, 120])
@pytest.mark.parametrize("args", PURE, ids=lambda a: "-".join(a[:2]))
def test_a_narrow_terminal_never_cuts_a_number(args, columns):
    narrow = on_terminal(columns, *args)
    _assert_no_number_cut(narrow, piped(*args).stdout, columns)


@pytest.mark.parametrize("columns", [80, 120])
def test_params_keeps_the_parameter_column_at_80_and_120(columns):
    total = json.loads(piped("params", "alexnet", "--json").stdout)["totals"]["params"]
    narrow = on_terminal(columns, "params", "alexnet")
    assert f"{total:,}" in narrow  # 61,100,840, not 61,…


def test_columns_that_cannot_fit_are_named_in_one_line():
    narrow = on_terminal(80, "params", "alexnet")
    assert "act. bytes" not in narrow.split("left out")[0]
    note = [line for line in narrow.splitlines() if "left out to fit" in line]
    assert len(note) == 1 and "act. bytes" in narrow.split("left out")[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("manners")
    recipe = tiny_recipe(folder)
    run = folder / "run"
    done = piped("train", str(recipe), "--set", "train.epochs=1", "--out", str(run))
    assert done.returncode == 0, done.stderr
    return run


TORCH = [
    ["profile", "lenet", "--device", "cpu", "--batch", "1,2", "--iters", "2", "--warmup", "1"],
    ["profile", "lenet", "--device", "cpu", "--batch", "1", "--iters", "2", "--layers"],
]


@pytest.mark.parametrize("columns", [40, 80])
@pytest.mark.parametrize("args", TORCH, ids=["profile", "profile-layers"])
def test_profile_tables_never_cut_a_number(args, columns):
    narrow = on_terminal(columns, *args)  # timings differ run to run: no wide twin to compare
    assert "…" not in narrow, narrow
    grouped = [n for n in _numbers(DROPPED.sub("", narrow)) if "," in n]
    assert grouped and all(GROUPED.fullmatch(n) for n in grouped), grouped  # 416,520 whole
    assert "median ms" in narrow


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_eval_tables_never_cut_a_number(tiny_run, columns):
    narrow = on_terminal(columns, "eval", str(tiny_run))
    _assert_no_number_cut(narrow, piped("eval", str(tiny_run)).stdout, columns)


def test_train_summary_table_never_cuts_a_number(tmp_path):
    recipe = tiny_recipe(tmp_path)
    narrow = on_terminal(
        40, "train", str(recipe), "--set", "train.epochs=1", "--out", str(tmp_path / "r")
    )
    table = narrow[narrow.index("completed") :]  # the progress bar above is not a table
    assert "…" not in table, table
    assert "left out to fit 40 columns" in table


# --- completion, help, the guide ------------------------------------------------------------


def test_shell_completion_is_offered_and_completes_commands_and_options():
    help_text = piped("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    for words, expected in (("cnnkit pa", "params"), ("cnnkit params --max-m", "--max-macs")):
        env = _env(_CNNKIT_COMPLETE="complete_bash", COMP_WORDS=words)
        env["COMP_CWORD"] = str(len(words.split()) - 1)
        done = subprocess.run(CNNKIT, capture_output=True, text=True, env=env, cwd=ROOT)
        assert expected in done.stdout.split(), (words, done.stdout, done.stderr)


@pytest.mark.parametrize(
    "command", ["conv", "rf", "params", "profile", "train", "eval", "recipes", "predict", "export"]
)
def test_help_has_readable_metavars_and_examples(command):
    out = piped(command, "--help").stdout
    assert "<str>" not in out and "<list[str]>" not in out and "TEXT" not in out, out
    assert re.search(rf"^    cnnkit {command}\b", out, re.MULTILINE)  # examples, one a line
    assert len(out.splitlines()) <= 60
    assert "docs/reference/commands.md" in out


def test_set_shows_key_value():
    assert "--set KEY=VALUE" in piped("params", "--help").stdout
    assert "--batch N[,N...]" in piped("profile", "--help").stdout


def test_guide_prints_installed_paths_that_exist():
    out = piped("--guide").stdout
    paths = dict(line.split(": ", 1) for line in out.splitlines())
    assert set(paths) == {"guide", "reference"}
    guide = Path(paths["guide"])
    assert guide.is_file() and guide.read_text(encoding="utf-8").startswith("#")
    assert Path(paths["reference"]).is_file()


def test_the_reference_lists_every_option_of_every_command():
    from cnnkit.cli.app import build_app

    text = (ROOT / "docs" / "reference" / "commands.md").read_text(encoding="utf-8")
    import typer.main

    group = typer.main.get_command(build_app())
    for name, command in group.commands.items():
        section = text[text.index(f"## cnnkit {name}\n") :]
        section = section[: section.find("\n## ", 1)]
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt not in ("--json", "--debug", "--help"):
                    assert f"`{opt}" in section or f"{opt}`" in section, (name, opt)


@pytest.mark.slow
def test_a_wheel_ships_the_guide_and_the_reference(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "wheel"), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip()[-200:]}")
    (wheel,) = (tmp_path / "wheel").glob("cnnkit-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
        + [str(wheel)],
        check=True,
    )
    env = _env(PYTHONPATH=str(site))
    done = subprocess.run(
        [sys.executable, "-m", "cnnkit", "--guide"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    paths = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert Path(paths["guide"]).is_relative_to(site)
    text = Path(paths["guide"]).read_text(encoding="utf-8")
    assert text == (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")


# --- print_table itself -------------------------------------------------------------------


def _table(**settings):
    from rich.table import Table

    table = Table(**settings)
    for header in ("layer", "kind", "params", "MACs", "activations"):
        table.add_column(header, justify="right")
    table.add_row("features.denseblock1.conv1", "conv", "23,296", "70,276,800", "193,600")
    table.add_row("fc", "linear", "-", "1,428,376,960", "1,000")
    return table


@pytest.mark.parametrize(
    "settings", [{}, {"box": None, "pad_edge": False}, {"show_edge": False}, {"padding": (0, 2)}]
)
def test_the_width_print_table_plans_with_is_rich_s_own(settings):
    from rich.console import Console
    from rich.measure import Measurement

    from cnnkit.cli import output

    out = Console(width=80, force_terminal=True)
    table = _table(**settings)
    output._prepare(table)
    widths = output._content_widths(out, table)
    whole = Measurement.get(out, out.options.update_width(10**6), table).maximum
    folded = sum(
        widths[id(c)] if c.no_wrap else min(widths[id(c)], output.TEXT_FLOOR) for c in table.columns
    )
    assert output._fits_in(out, table, widths) == whole - sum(widths.values()) + folded


@pytest.mark.parametrize("width", [20, 30, 45, 60, 200])
def test_print_table_folds_text_and_drops_columns_but_never_cuts_a_number(width):
    import io

    from rich.console import Console

    from cnnkit.cli.output import print_table

    out = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    print_table(out, _table())
    text = out.file.getvalue()
    assert "…" not in text
    table = [line for line in text.splitlines() if "│" in line or "┃" in line]
    assert all(len(line) <= width for line in table)
    found = DROPPED.search(text)
    note = " ".join(found.group(0).split()) if found else ""
    columns = {"params": ["23,296"], "MACs": ["70,276,800", "1,428,376,960"]}
    columns["activations"] = ["193,600", "1,000"]
    for header, numbers in columns.items():
        for number in numbers:  # whole in its row, or its column named as left out
            assert number in "".join(table) or f" {header}" in note, (header, number, text)
