"""Ctrl-C and SIGTERM as one exception that unwinds every ``finally`` (no torch).

Python turns SIGINT into ``KeyboardInterrupt``, which click catches first and turns into a
bare "Aborted!"; SIGTERM kills the process without running any cleanup. ``handled()`` makes
both raise ``Interrupted`` instead: a ``BaseException`` that click lets through, so temporary
files are removed, the run folder is unlocked, and the CLI prints one line with the command
that continues the run (exit code 128 + the signal number: 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """A SIGINT or SIGTERM arrived; ``hint`` is what to do next (set where it is known)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.hint = ""

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Raise ``Interrupted`` on SIGINT/SIGTERM while the block runs (main thread only: Python
    runs signal handlers there); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def _raise(signum: int, frame: FrameType | None) -> None:
        if fired:  # the first one is already unwinding: let its cleanup finish
            return
        fired.append(signum)
        raise Interrupted(signum)

    # A signal the parent made us ignore (nohup, a background job of a script) stays ignored.
    wanted = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, _raise) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
