"""Run the cnnkit CLI in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from cnnkit.cli.app import main


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    """Invoke ``cnnkit ARGS`` as the console script would, without a subprocess."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as done:
            code = int(done.code or 0) if not isinstance(done.code, str) else 1
    return Result(code, out.getvalue(), err.getvalue())
