"""Checkpoints: written atomically, read with ``weights_only=True``, checked for origin.

A checkpoint is a plain dict of tensors, numbers and strings (so ``weights_only`` loading can
read it and a checkpoint can never run code), marked with ``FORMAT`` so a foreign file gets a
clear message instead of a ``KeyError`` deep in training.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from cnnkit.atomic import atomic_open
from cnnkit.errors import CheckpointError, DataError
from cnnkit.train.runs import kill_point

FORMAT = "cnnkit-checkpoint"
VERSION = 1
REQUIRED = ("model", "recipe", "epoch", "task", "classes", "mean", "std")
CHECKSUM = "checksum"  # BLAKE2b of every value; absent in checkpoints from before it was added


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then ``os.replace``: a reader (or a
    resumed run after SIGKILL) sees the old file or the new one, never half of one."""
    body = {"format": FORMAT, "version": VERSION, **obj}
    with atomic_open(path, "wb") as handle:
        stream = _Recording(handle)
        try:
            torch.save({**body, CHECKSUM: checksum(body)}, stream)
        except RuntimeError:
            # torch's zip writer turns a failed write (a full disk) into "[enforce fail at
            # inline_container.cc]"; the OSError it swallowed says what happened.
            if stream.error is not None:
                raise stream.error from None
            raise
        handle.flush()
        kill_point(f"write:{path.name}")  # test-only: a kill with the temporary file written


class _Recording:
    """A write-only stream that remembers the first ``OSError`` of the file under it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.handle.flush()


def checksum(obj: dict[str, Any]) -> str:
    """BLAKE2b over every value (tensor bytes with dtype and shape, numbers, strings) in
    sorted-key order: a flipped byte in a tensor loads fine as a wrong weight, this catches it."""
    digest = hashlib.blake2b(digest_size=32)
    _feed(digest, {k: v for k, v in obj.items() if k != CHECKSUM})
    return "blake2b:" + digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{value.dtype}{list(value.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            digest.update(f"K{type(key).__name__}:{key!r}".encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{type(value).__name__}:{value!r}".encode())


def read_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; a missing file, a pickle holding code and a
    damaged file are each one ``CheckpointError`` naming the file."""
    where = str(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", where=where)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _detail(str(err))
        if "GLOBAL" in detail or "global" in detail:  # a class or function: code, refused
            raise CheckpointError(
                f"refused: holds code or foreign objects that weights_only=True will not load "
                f"({detail})",
                where=where,
            ) from None
        raise CheckpointError(f"corrupt or truncated checkpoint ({detail})", where=where) from None
    except Exception as err:  # noqa: BLE001 - the unpickler fails in many ways (IndexError on text)
        detail = _detail(str(err)) or type(err).__name__
        raise CheckpointError(f"corrupt or truncated checkpoint ({detail})", where=where) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a cnnkit checkpoint; every failure is one ``CheckpointError``."""
    where = str(path)
    obj = read_weights_only(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            "not a cnnkit checkpoint (a bare state_dict or another tool's file?); "
            "use runs/NAME/best.pt or last.pt written by cnnkit train",
            where=where,
        )
    if obj.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint version {obj.get('version')} is not {VERSION}", where=where
        )
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}", where=where)
    if CHECKSUM in obj and checksum(obj) != obj[CHECKSUM]:
        raise CheckpointError(
            "checksum mismatch: the file was changed or damaged after cnnkit wrote it; "
            "use another checkpoint (best.pt or last.pt) or train again",
            where=where,
        )
    _check_fields(obj, where)
    return obj


def _numbers(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )


# What each field must hold. A checksum only proves the file is as its writer left it; a
# file written by hand (or by another program) with the right marks can still hold a list
# where the recipe's text belongs, which would fail far from here as an AttributeError.
FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "model": (
        "a mapping of parameter names to tensors",
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
        ),
    ),
    "recipe": ("the recipe's text", lambda v: isinstance(v, str)),
    "epoch": ("a whole number >= 0", lambda v: type(v) is int and v >= 0),
    "task": ("classify, regress or segment", lambda v: v in ("classify", "regress", "segment")),
    "classes": (
        "a list of class names",
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v),
    ),
    "mean": ("a list of numbers", _numbers),
    "std": ("a list of numbers", _numbers),
    "name": ("text", lambda v: isinstance(v, str)),
    "input_shape": (
        "a list of positive sizes",
        lambda v: (
            isinstance(v, (list, tuple))
            and 1 <= len(v) <= 4
            and all(type(n) is int and n > 0 for n in v)
        ),
    ),
}


def _check_fields(obj: dict[str, Any], where: str) -> None:
    """Refuse a field of the wrong type, naming it (optional fields only when present)."""
    for key, (expected, valid) in FIELDS.items():
        if key in obj and not valid(obj[key]):
            shown = repr(obj[key]) if not isinstance(obj[key], dict) else "a mapping"
            raise CheckpointError(
                f"field {key!r} should be {expected}, not {shown[:60]}", where=where
            )


def load_weights(module: torch.nn.Module, state: dict[str, Any], where: str) -> None:
    """Load ``state`` into ``module``; weights that do not fit (a checkpoint from another
    recipe, or one edited by hand) are one ``CheckpointError``, not torch's multi-line list."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = (lines or [str(err)])[0][:300]
        message = f"weights do not fit its recipe's model: {first}"
        raise CheckpointError(message, where=where) from None


def check_resumable(checkpoint: dict[str, Any], fingerprint: str, path: Path) -> None:
    """A resume must continue the same run: optimiser state present, and the data the run
    was trained on (a checkpoint from before fingerprints were recorded is not checked)."""
    if "optimizer" not in checkpoint or "state" not in checkpoint:
        raise CheckpointError("has no optimiser state to resume from", where=str(path))
    saved = checkpoint.get("data_fingerprint")
    if saved and saved != fingerprint:
        raise DataError(
            f"the data differs from the data this run was trained on (fingerprint {saved}, "
            f"now {fingerprint}); restore it, or train a new run",
            where=str(path),
        )


def _detail(message: str) -> str:
    """The informative line of torch's multi-paragraph load errors (not the boilerplate)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    boring = ("Weights only load failed", "Please file an issue", "Check the documentation")
    useful = [line for line in lines if not line.startswith(boring)]
    return (useful or lines or [""])[0][:200]
