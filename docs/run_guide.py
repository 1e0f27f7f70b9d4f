"""Run every command of ``docs/guide.md`` and compare its output with what the guide shows.

The guide is the test's data: a ```console fence holds ``$ command`` lines (a ``\\`` at a line
end continues the command), each followed by the output it prints. The commands run in order
in one temporary folder (later commands use the runs of earlier ones) through ``bash``, with
stdout and stderr merged as a terminal shows them, ``COLUMNS`` fixed so rich tables render as
in the guide, and ``cnnkit`` meaning ``python -m cnnkit`` of this interpreter. A command must
exit 0; a guide that shows a failure writes ``; echo "exit code $?"`` after it.

Expected output may mask timings (and only timings): ``…`` matches any text within one line,
and a line holding only ``...`` matches any number of lines. Other fences are not run; a fence
opened as ```bash file=docs/ci_gate.sh must show that file exactly.

Trained numbers depend on the CPU's kernels (AVX2 or AVX-512, Intel or AMD builds of MKL and
oneDNN sum in other orders) and the thread count, not only on the seed. The guide records the
machine its outputs came from (``<!-- trained outputs recorded on: ... -->``, written by
``--update``). On that kind of machine every output must match exactly; on another, the
outputs of training commands (``cnnkit train``, ``cnnkit eval``, ``ci_gate.sh``) must match
with their numbers left out (every word, line and verdict the same), and the rest exactly.

    python docs/run_guide.py            # run and report every difference (exit 1 if any)
    python docs/run_guide.py --update   # rewrite unmasked outputs and file blocks from a run;
                                        # masked outputs that differ are reported, not rewritten
    python docs/run_guide.py --images docs/img   # also keep the pictures the commands drew

``tests/test_guide.py`` imports this module, so the guide and its check never drift apart.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"
COLUMNS = 100
ANY_TEXT = "…"  # within a line
ANY_LINES = "..."  # a line of its own
FILES_COPIED = ("docs/ci_gate.sh",)  # repository files the guide's commands run
TIMEOUT_S = 300


@dataclass
class Command:
    """One ``$`` command of a console block and the output the guide shows for it."""

    text: str  # the command as bash gets it (continuations joined with newlines)
    expected: list[str]
    line: int  # 1-based line of the ``$`` in the guide
    span: tuple[int, int]  # guide line indices [start, end) of the expected output

    @property
    def masked(self) -> bool:
        return any(ANY_TEXT in x or x.strip() == ANY_LINES for x in self.expected)


@dataclass
class FileBlock:
    """A fence that must show a repository file verbatim."""

    path: str
    span: tuple[int, int]
    line: int


@dataclass
class Guide:
    lines: list[str]
    commands: list[Command] = field(default_factory=list)
    files: list[FileBlock] = field(default_factory=list)
    recorded_on: str = ""  # the machine the trained outputs came from (see the docstring)
    measured_on: str = ""  # the machine a run of the guide was on


_RECORDED = re.compile(r"^<!-- trained outputs recorded on: (.*) -->$")
_TRAINED = re.compile(r"\bcnnkit (train|eval)\b|ci_gate\.sh")
# a number, or the "." a confusion matrix shows for zero
_NUMBER = re.compile(r"[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?|(?<!\S)\.(?!\S)")
_SPACING = re.compile(r"[\s━─═]+")


def trained(command: Command) -> bool:
    """Whether the command's output holds numbers that training produced."""
    return _TRAINED.search(command.text) is not None


def without_numbers(lines: list[str]) -> list[str]:
    """Lines with every number as ``#`` and runs of spacing (or table rules, whose widths follow
    the numbers) as one space: what a trained output must keep on any machine."""
    spaced = [_SPACING.sub(" ", _NUMBER.sub("#", x)).strip() for x in normalise(lines)]
    return [re.sub(f" ?{ANY_TEXT} ?", ANY_TEXT, x) for x in spaced]  # a mask may eat a space


_FENCE = re.compile(r"^```(\S*)(.*)$")


def parse(text: str) -> Guide:
    """Split the guide into its console commands and its file blocks."""
    lines = text.split("\n")
    guide = Guide(lines)
    for line in lines:
        if (r := _RECORDED.match(line)) is not None:
            guide.recorded_on = r.group(1)
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        lang, info = m.group(1), m.group(2)
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"guide line {i + 1}: fence never closed")
        if lang == "console":
            guide.commands += _commands(lines, i + 1, end)
        elif (f := re.search(r"\bfile=(\S+)", info)) is not None:
            guide.files.append(FileBlock(f.group(1), (i + 1, end), i + 1))
        i = end + 1
    return guide


def _commands(lines: list[str], start: int, end: int) -> list[Command]:
    found: list[Command] = []
    i = start
    if start < end and not lines[start].startswith("$ "):
        raise ValueError(f"guide line {start + 1}: a console block starts with '$ command'")
    while i < end:
        first, parts = i + 1, [lines[i][2:]]
        while parts[-1].endswith("\\") and i + 1 < end:
            i += 1
            parts.append(lines[i])
        i += 1
        out_start = i
        while i < end and not lines[i].startswith("$ "):
            i += 1
        found.append(Command("\n".join(parts), lines[out_start:i], first, (out_start, i)))
    return found


def normalise(lines: list[str]) -> list[str]:
    """Trailing spaces (rich pads table lines) and trailing blank lines do not count."""
    out = [x.rstrip() for x in lines]
    while out and not out[-1]:
        out.pop()
    return out


def _line_regex(expected: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(p) for p in expected.split(ANY_TEXT)) + r"\Z")


def matches(expected: list[str], actual: list[str]) -> bool:
    """Exact line by line, but ``…`` matches any text and a ``...`` line any lines."""
    exp, act = normalise(expected), normalise(actual)

    def walk(e: int, a: int) -> bool:
        if e == len(exp):
            return a == len(act)
        if exp[e].strip() == ANY_LINES:
            return any(walk(e + 1, k) for k in range(a, len(act) + 1))
        return a < len(act) and bool(_line_regex(exp[e]).match(act[a])) and walk(e + 1, a + 1)

    return walk(0, 0)


def environment(work: Path) -> dict[str, str]:
    """bash with a ``cnnkit`` that is this interpreter's module, first on PATH."""
    shim = work / ".bin"
    shim.mkdir(exist_ok=True)
    script = shim / "cnnkit"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cnnkit "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    env = dict(os.environ)
    for key in ("CNNKIT_DEBUG", "FORCE_COLOR", "CLICOLOR_FORCE"):
        env.pop(key, None)
    path = [str(shim), str(Path(sys.executable).parent), env.get("PATH", "")]
    env.update(
        PATH=os.pathsep.join(path),
        COLUMNS=str(COLUMNS),
        LINES="50",
        PYTHONUNBUFFERED="1",  # stdout and stderr interleave as on a terminal
        NO_COLOR="1",
        TERM="dumb",
        PYTHONHASHSEED="0",
    )
    return env


def machine(env: dict[str, str]) -> str:
    """What trained numbers depend on besides the seed: the CPU's architecture, vendor and the
    kernels torch picks for it, torch's version and its thread count, as the commands see them."""
    probe = (
        "import platform, torch; "
        "print(platform.machine(), torch.backends.cpu.get_cpu_capability(), "
        "'torch', torch.__version__, torch.get_num_threads(), 'threads')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    vendor = "unknown-vendor"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    arch, *rest = done.stdout.split()
    return " ".join([arch, vendor, *rest])


def prepare(work: Path) -> dict[str, str]:
    """The working folder: the repository files the commands read, and docs/img for pictures."""
    (work / "docs" / "img").mkdir(parents=True, exist_ok=True)
    for name in FILES_COPIED:
        shutil.copy2(ROOT / name, work / name)
    return environment(work)


def run_command(command: Command, work: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run(
        ["bash", "-c", command.text],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=TIMEOUT_S,
    )
    return done.returncode, done.stdout.split("\n")


def needs_missing_tool(command: Command) -> str | None:
    """``jq`` is the one outside tool the guide uses; without it those commands are skipped."""
    if re.search(r"\bjq\b|ci_gate\.sh", command.text) and shutil.which("jq") is None:
        return "jq"
    return None


@dataclass
class Outcome:
    command: Command
    code: int
    actual: list[str]
    seconds: float
    skipped: str | None = None
    same_machine: bool = True  # the guide's trained outputs were recorded on this kind

    @property
    def exact(self) -> bool:
        return self.code == 0 and matches(self.command.expected, self.actual)

    @property
    def ok(self) -> bool:
        if self.skipped is not None or self.exact:
            return True
        if self.same_machine or self.code != 0 or not trained(self.command):
            return False
        return matches(without_numbers(self.command.expected), without_numbers(self.actual))

    def report(self) -> str:
        head = f"guide.md:{self.command.line}: $ {self.command.text}"
        if self.code != 0:
            head += f"\n  exited {self.code} (show failures with '; echo \"exit code $?\"')"
        diff = difflib.unified_diff(
            normalise(self.command.expected),
            normalise(self.actual),
            "guide",
            "actual",
            lineterm="",
        )
        return head + "\n" + "\n".join(diff)


def run_guide(guide: Guide, work: Path) -> list[Outcome]:
    """Every command in order in ``work``; a skipped command does not stop the others."""
    env = prepare(work)
    guide.measured_on = machine(env)
    same = guide.recorded_on == guide.measured_on
    outcomes = []
    for command in guide.commands:
        missing = needs_missing_tool(command)
        if missing:
            outcomes.append(Outcome(command, 0, [], 0.0, skipped=f"{missing} is not installed"))
            continue
        started = time.perf_counter()
        code, actual = run_command(command, work, env)
        seconds = time.perf_counter() - started
        outcomes.append(Outcome(command, code, actual, seconds, same_machine=same))
    return outcomes


def file_differences(guide: Guide) -> list[str]:
    problems = []
    for block in guide.files:
        shown = normalise(guide.lines[block.span[0] : block.span[1]])
        real = normalise((ROOT / block.path).read_text(encoding="utf-8").split("\n"))
        if shown != real:
            problems.append(f"guide.md:{block.line}: the block differs from {block.path}")
    return problems


def updated(guide: Guide, outcomes: list[Outcome]) -> tuple[str, list[str]]:
    """The guide with unmasked outputs and file blocks replaced by the real ones; the masked
    outputs that no longer match are listed for a person to look at."""
    replace: dict[tuple[int, int], list[str]] = {}
    pending = []
    for o in outcomes:
        if o.skipped is not None or o.exact:
            continue
        if o.code != 0 or o.command.masked:
            pending.append(o.report())
        else:
            replace[o.command.span] = normalise(o.actual)
    for block in guide.files:
        real = normalise((ROOT / block.path).read_text(encoding="utf-8").split("\n"))
        replace[block.span] = real
    lines = list(guide.lines)
    for (start, end), new in sorted(replace.items(), reverse=True):
        lines[start:end] = new
    if not pending and guide.measured_on:  # every output is now this machine's
        record = f"<!-- trained outputs recorded on: {guide.measured_on} -->"
        at = [i for i, line in enumerate(lines) if _RECORDED.match(line)]
        if at:
            lines[at[0]] = record
        else:
            lines[1:1] = ["", record]
    return "\n".join(lines), pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite unmasked outputs")
    parser.add_argument("--images", type=Path, help="copy the drawn docs/img/*.png here")
    parser.add_argument("--guide", type=Path, default=GUIDE)
    args = parser.parse_args(argv)
    guide = parse(args.guide.read_text(encoding="utf-8"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnkit-guide-") as tmp:
        work = Path(tmp)
        outcomes = run_guide(guide, work)
        if args.images is not None:
            args.images.mkdir(parents=True, exist_ok=True)
            for png in sorted((work / "docs" / "img").glob("*.png")):
                shutil.copy2(png, args.images / png.name)
                print(f"picture: {args.images / png.name}")
    for o in outcomes:
        if o.skipped:
            print(f"skipped guide.md:{o.command.line} ({o.skipped})")
    if args.update:
        text, pending = updated(guide, outcomes)
        if text != "\n".join(guide.lines):
            args.guide.write_text(text, encoding="utf-8")
            print(f"updated {args.guide}")
        for report in pending:
            print(f"masked or failing, not rewritten:\n{report}\n")
        failed = len(pending)
    else:
        problems = [o.report() for o in outcomes if not o.ok] + file_differences(guide)
        for problem in problems:
            print(problem + "\n")
        failed = len(problems)
    took = time.perf_counter() - started
    print(f"{len(outcomes)} commands, {failed} differing, {took:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
