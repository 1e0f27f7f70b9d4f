"""Run fuzz cases through the fork server and judge each outcome.

A case is a command line plus the files it reads, run in a folder of its own. Its outcome is
one of: ``ok`` (exit 0), ``help`` (a bare command shows its help), ``refused`` (exit 1 or 2
with one ``error:`` line, the last on stderr), or a failure: ``internal`` (a traceback,
"internal error", or an exit code outside 0/1/2/130; 3 is the CLI's crash code),
``not-one-line`` (an error in several lines or none), ``hang`` (over ``CPU_S`` of CPU or
``WALL_S`` of wall-clock time), ``memory`` (over ``RSS_MB`` resident, or an allocation
refused by the address-space safety net),
``bad-json`` (``--json`` output that strict JSON rejects, such as NaN), ``code-exec`` (the
case created the ``pwned`` file) and ``temp-file`` (a hidden temporary file named in an error
or left behind).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.files import PWNED
from tests.fuzz.recipes import TINY

ROOT = Path(__file__).resolve().parents[2]
CPU_S = 10  # the "no hang over 10 s", counted in CPU seconds on a shared machine
WALL_S = 30  # a blocked case (a lock, a pipe) is a hang too; wall time is looser under load
RSS_MB = 1024  # the "no run over 1 GB"
AS_MB = 6144  # address-space safety net so a runaway allocation cannot take the machine
ALLOC_FAILED = ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate mem")
FAILURES = ("internal", "not-one-line", "hang", "memory", "bad-json", "code-exec", "temp-file")
TEMP = re.compile(r"\.[^/\s]+\.\d+\.tmp\b")  # cnnkit.atomic's hidden temporary files
# Every case folder holds these, so command lines can name them.
COMMON_FILES: dict[str, bytes | None] = {
    "dir": None,
    "file.txt": b"just text\n",
    "tiny.yaml": TINY.encode(),
    "text.yaml": b"this is not a recipe\n",
}


@dataclass
class Case:
    """One hostile input: a command line and the files it reads (``None``: a folder)."""

    family: str
    index: int
    argv: list[str]
    files: dict[str, bytes | None] = field(default_factory=dict)
    copies: dict[str, Path] = field(default_factory=dict)  # name in the folder -> source
    note: str = ""
    spawn: bool = False  # run `python -m cnnkit` in a fresh interpreter

    @property
    def id(self) -> str:
        return f"{self.family}:{self.index}"


@dataclass
class Outcome:
    case: Case
    folder: Path
    result: dict
    verdict: str

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES


class Worker:
    """The fork server (``tests/fuzz/worker.py``) as a subprocess: one case at a time."""

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("CNNKIT_DEBUG", None)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
            text=True,
        )
        self._answer()

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the fuzz worker died: {self.log.read_text()[-2000:]}")
        return json.loads(line)

    def send(self, request: dict) -> dict:
        limits = {"cpu_s": CPU_S, "wall_s": WALL_S, "rss_mb": RSS_MB, "as_mb": AS_MB}
        self.proc.stdin.write(json.dumps({**limits, **request}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)


def prepare(case: Case, folder: Path) -> None:
    """Write the case's files (over the common ones) into a fresh ``folder``."""
    folder.mkdir(parents=True)
    for name, source in case.copies.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, folder / name)
    for name, data in {**COMMON_FILES, **case.files}.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            if path.is_file():
                path.unlink()
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(data)


def run(worker: Worker, case: Case, folder: Path) -> Outcome:
    prepare(case, folder)
    result = worker.send({"dir": str(folder), "argv": case.argv, "spawn": case.spawn})
    return Outcome(case, folder, result, classify(case, result, folder))


def _strict_json(text: str) -> bool:
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True


def _one_error_line(stderr: str) -> bool:
    """Exactly one ``error:`` line, and it is the last (progress lines may come before)."""
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return len(errors) == 1 and lines[-1] == errors[0]


def classify(case: Case, result: dict, folder: Path) -> str:
    """The outcome's verdict (see the module docstring)."""
    code, err = result["code"], result["stderr"]
    if result["killed"]:
        return result["killed"]
    if result["maxrss_mb"] > RSS_MB or any(text in err for text in ALLOC_FAILED):
        return "memory"
    if (folder / PWNED).exists():
        return "code-exec"
    if TEMP.search(err) or any(TEMP.fullmatch(p.name) for p in folder.rglob(".*.tmp")):
        return "temp-file"
    if "Traceback" in err or "internal error" in err or code not in (0, 1, 2, 130):
        return "internal"
    if code == 2 and len(case.argv) <= 1 and err.lstrip().startswith("Usage:"):
        return "help"  # a command given no arguments shows its help, by design
    if code in (1, 2):
        return "refused" if _one_error_line(err) else "not-one-line"
    informational = {"--help", "-h", "--version"} & set(case.argv)
    if code == 0 and "--json" in case.argv and not informational and not result["stdout_cut"]:
        return "ok" if _strict_json(result["stdout"]) else "bad-json"
    return "ok"


def _show(name: str, data: bytes | None) -> str:
    """A text input shown (its first 1,500 characters); a binary one named with its size."""
    if data is None:
        return f"  {name}/ (a folder)"
    try:
        text = data[:1500].decode("utf-8")
    except UnicodeDecodeError:
        return f"  {name}: {len(data):,} bytes, binary (in the folder)"
    more = f"\n  ... ({len(data):,} bytes in all)" if len(data) > 1500 else ""
    return f"  --- {name} ---\n" + "\n".join("  | " + line for line in text.splitlines()) + more


def report(outcome: Outcome, seed: str) -> str:
    """A failure as a developer replays it: the command, the folder, the inputs, stderr."""
    case, r = outcome.case, outcome.result
    argv = " ".join(shlex.quote(a) for a in case.argv)
    tail = "\n".join("  ! " + line for line in r["stderr"].splitlines()[-6:])
    shown = [_show(n, d) for n, d in case.files.items() if n not in COMMON_FILES or d is None]
    return "\n".join(
        [
            f"[{case.id}] {outcome.verdict}: exit {r['code']}, {r['cpu_s']} s CPU, "
            f"{r['wall_s']} s wall, {r['maxrss_mb']} MB -- {case.note}",
            f"  replay: cd {outcome.folder} && python -m cnnkit {argv}",
            f"  regenerate: CNNKIT_FUZZ_SEED={seed} CNNKIT_FUZZ_ONLY={case.id} "
            "python -m pytest tests/fuzz",
            *([f"  copied in: {', '.join(case.copies)}"] if case.copies else []),
            tail,
            *shown,
        ]
    )
