"""Atomic file writes, the one way cnnkit writes a result file or a checkpoint.

The data goes to a temporary file in the same folder, is flushed and fsynced, then renamed
over the target with ``os.replace``: a reader, a crash or a SIGKILL sees the old file or the
new one, never half of one, and a failed write leaves the old file and no temporary behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing (``"w"`` text, ``"wb"`` binary); on a clean exit
    it replaces ``path``, on an exception it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = {"encoding": "utf-8", "newline": ""} if "b" not in mode else {}
    try:
        with open(tmp, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename not in (None, str(tmp)):  # about another file: leave it as it is
            raise
        # The temporary's name is ours, not the user's: the error names the target.
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
