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
_HELD: list[int] = []  # depth of ``deferred()`` blocks open now (one entry per block)
_PENDING: list[int] = []  # signals that arrived inside one, raised when the outermost ends


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
        if fired or _PENDING:  # the first one is unwinding or waits: let it finish
            return
        if _HELD:  # a checkpoint is being saved: finish it, then stop (see ``deferred``)
            _PENDING.append(signum)
            return
        fired.append(signum)
        raise Interrupted(signum)

    # A signal the parent made us ignore (nohup, a background job of a script) stays ignored.
    wanted = [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, _raise) for s in wanted}
    _PENDING.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _PENDING.clear()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a SIGINT/SIGTERM that arrives while the block runs and raise it when the block
    ends: a Ctrl-C while a checkpoint is written lets that checkpoint (and the files that go
    with it) complete, so the run stops with the epoch it just finished saved. A second
    signal meanwhile is ignored; an exception in the block wins over the held signal."""
    _HELD.append(1)
    try:
        yield
    finally:
        _HELD.pop()
    if not _HELD and _PENDING:  # kept until ``handled`` ends: later signals are ignored
        raise Interrupted(_PENDING[0])
