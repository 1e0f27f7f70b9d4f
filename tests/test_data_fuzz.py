"""Seeded fuzzing of damaged data files: every mutation of a valid npz, IDX (raw and .gz),
PNG or CSV file either loads or is one ``DataError`` naming a file, within seconds.

CI runs a fixed, bounded set; ``CNNKIT_DATA_FUZZ=2000 pytest tests/test_data_fuzz.py`` runs
more cases locally (and ``CNNKIT_DATA_FUZZ_SEED`` picks another set).
"""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from cnnkit.errors import DataError
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data

CASES = int(os.environ.get("CNNKIT_DATA_FUZZ", "140"))
SEED = int(os.environ.get("CNNKIT_DATA_FUZZ_SEED", "0"))
X = np.random.default_rng(0).integers(0, 256, (12, 4, 4), dtype=np.uint8)
Y = np.arange(12) % 3
KINDS = ("npz", "npz_compressed", "idx", "idx_gz", "png", "csv", "csv_cells")


def _npz(compressed: bool) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, x=X, y=Y)
    return out.getvalue()


def _idx(array: np.ndarray) -> bytes:
    dims = struct.pack(f">{array.ndim}i", *array.shape)
    return bytes([0, 0, 8, array.ndim]) + dims + array.astype(">u1").tobytes()


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(X[0]).save(out, format="PNG")
    return out.getvalue()


def _csv() -> bytes:
    header = "label," + ",".join(f"p{i}" for i in range(16))
    rows = [f"{Y[i]}," + ",".join(map(str, X[i].ravel())) for i in range(len(Y))]
    return ("\n".join([header, *rows]) + "\n").encode()


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """Flipped bytes, cut-outs, insertions and truncation: what disks and downloads do."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op, at = rng.random(), rng.randrange(len(d) + 1)
        if op < 0.5 and at < len(d):
            d[at] = rng.randrange(256)
        elif op < 0.7:
            del d[at : at + rng.randint(1, 50)]
        elif op < 0.85:
            d[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        else:
            d = d[:at]
    return bytes(d)


def _mutate_cells(data: bytes, rng: random.Random) -> bytes:
    """CSV damage at the cell level: empty, NaN, huge or text cells, stray separators."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        at = rng.randrange(len(d))
        d[at : at + 1] = rng.choice([b",", b"\n", b"nan", b"", b"x", b"1e999", b'"', b"-1", b"inf"])
    return bytes(d)


def _build(kind: str, folder: Path, rng: random.Random) -> dict:
    """One damaged data set of ``kind`` in ``folder``; returns its ``data:`` section."""
    if kind.startswith("npz"):
        (folder / "d.npz").write_bytes(_mutate(_npz(kind == "npz_compressed"), rng))
        return {"name": "npz", "path": str(folder / "d.npz")}
    if kind.startswith("idx"):
        gz = kind == "idx_gz"
        files = {"images-idx3": _idx(X), "labels-idx1": _idx(Y)}
        damaged = rng.choice(sorted(files))
        for part, data in files.items():
            data = gzip.compress(data, mtime=0) if gz else data
            data = _mutate(data, rng) if part == damaged else data
            (folder / f"train-{part}-ubyte{'.gz' if gz else ''}").write_bytes(data)
        return {"name": "idx", "path": str(folder)}
    if kind == "png":
        for name in ("a", "b"):
            (folder / name).mkdir()
            (folder / name / "ok.png").write_bytes(_png())
        (folder / "a" / "damaged.png").write_bytes(_mutate(_png(), rng))
        return {"name": "folder", "path": str(folder)}
    damage = _mutate_cells if kind == "csv_cells" else _mutate
    (folder / "d.csv").write_bytes(damage(_csv(), rng))
    return {"name": "csv", "path": str(folder / "d.csv")}


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_files_load_or_are_one_data_error(tmp_path, kind):
    rng = random.Random(f"{SEED}:{kind}")
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(max(1, CASES // len(KINDS))):
        folder = tmp_path / str(i)
        folder.mkdir()
        raw = _build(kind, folder, rng)
        config = parse_data({**raw, "val": 0, "test": 0, "resize": [4, 4]}, NoLocation("fuzz"))
        started = time.perf_counter()
        try:
            data = load_data(config, (1, 4, 4))
        except DataError as err:  # anything else fails the test: an internal error
            message = str(err)
            assert "\n" not in message and str(folder) in message, (i, message)
            outcomes["refused"] += 1
        else:
            assert bool(data.train.x.isfinite().all()), i  # what loads is usable
            outcomes["loaded"] += 1
        assert time.perf_counter() - started < 10, (i, raw)
    assert outcomes["refused"], outcomes  # the mutations do damage: the test sees errors
