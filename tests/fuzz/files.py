"""Broken binary inputs: corrupted checkpoints and run folders, and broken data files.

Checkpoints are corrupted from a real run trained by the suite (flipped bytes anywhere or
inside a tensor's bytes, truncation, a zip whose pickle imports ``os``, another recipe's
checkpoint, missing files); data files are written valid and then broken (truncated npz, PNG
and gzip, a decompression-bomb PNG, an IDX header that lies, NaN pixels and labels, ...).
Everything here is bytes built with the standard library, NumPy and Pillow: no torch.
"""

from __future__ import annotations

import functools
import gzip
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

Make = Callable[[], bytes]
PWNED = "pwned"  # a file no case may create: it would mean a recipe or checkpoint ran code
EVIL_PICKLE = b"cos\nsystem\n(S'touch " + PWNED.encode() + b"'\ntR."


def flip(rng: random.Random, data: bytes, count: int, start: int = 0, end: int = -1) -> bytes:
    """``data`` with ``count`` random bytes in ``[start, end)`` xor-ed with a random mask."""
    out = bytearray(data)
    end = len(out) if end < 0 else end
    for _ in range(count):
        if end > start:
            out[rng.randrange(start, end)] ^= rng.randrange(1, 256)
    return bytes(out)


def tensor_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each stored tensor's bytes inside a torch zip checkpoint."""
    spans = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.compress_type == zipfile.ZIP_STORED:
                name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 :][:4])
                start = info.header_offset + 30 + name_len + extra_len
                spans.append((start, start + info.file_size))
    return spans


def evil_zip() -> bytes:
    """A torch-format zip whose pickle calls ``os.system``: ``weights_only`` must refuse it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", EVIL_PICKLE)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def checkpoint_ops(rng: random.Random, good: bytes, other: bytes) -> dict[str, Make]:
    """Corruptions of the checkpoint ``good`` (``other`` is another recipe's), by name."""
    ops = {
        "flip 1 byte": lambda: flip(rng, good, 1),
        "flip 8 bytes": lambda: flip(rng, good, 8),
        "flip a tensor byte": lambda: flip(rng, good, 1, *rng.choice(tensor_spans(good))),
        "flip the zip directory": lambda: flip(rng, good, 4, len(good) - 200),
        "truncate": lambda: good[: rng.randrange(len(good))],
        "truncate to 0": lambda: b"",
        "evil pickle zip": evil_zip,
        "evil raw pickle": lambda: EVIL_PICKLE,
        "text": lambda: b"input: [1, 8, 8]\nmodel: {layers: [relu]}\n",
        "random bytes": lambda: bytes(rng.randrange(256) for _ in range(2048)),
        "other recipe's checkpoint": lambda: other,
        "zeros": lambda: bytes(len(good)),
    }
    return ops


# ----------------------------------------------------------------------------- data files

N, CLASSES, SIDE = 30, 3, 8


def _np():
    import numpy as np

    return np


def images() -> tuple:
    """(x uint8 N x 1 x 8 x 8, y int64 N): a tiny, valid 3-class data set."""
    np = _np()
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, 1, SIDE, SIDE), dtype=np.uint8), np.arange(N) % CLASSES


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    _np().savez(buffer, **arrays)
    return buffer.getvalue()


def npy_header_lie(shape: tuple[int, ...]) -> bytes:
    """An .npz whose ``x`` header declares ``shape`` but holds 64 bytes."""
    header = repr({"descr": "|u1", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", npy)
        archive.writestr("y.npy", npy)
    return buffer.getvalue()


def npz_ops(rng: random.Random) -> dict[str, Make]:
    """A broken ``.npz`` (x images, y labels)."""
    np = _np()
    x, y = images()
    good = npz(x=x, y=y)
    nan_x = x.astype(np.float32)
    nan_x[rng.randrange(N), 0, 0, 0] = rng.choice((np.nan, np.inf, -np.inf))
    ops = {
        "truncated": lambda: good[: rng.randrange(len(good))],
        "flipped": lambda: flip(rng, good, 4),
        "nan pixel": lambda: npz(x=nan_x, y=y),
        "nan label": lambda: npz(x=x, y=np.where(np.arange(N) == 3, np.nan, y.astype(float))),
        "fraction labels": lambda: npz(x=x, y=y + 0.5),
        "negative labels": lambda: npz(x=x, y=y - 5),
        "string labels": lambda: npz(x=x, y=np.array(["a", "b", "c"] * 10)),
        "lengths differ": lambda: npz(x=x, y=y[:-3]),
        "no y": lambda: npz(x=x),
        "flat x": lambda: npz(x=x.reshape(-1), y=y),
        "5-D x": lambda: npz(x=x[..., None], y=y),
        "empty": lambda: npz(x=x[:0], y=y[:0]),
        "one class": lambda: npz(x=x, y=y * 0),
        "object array": lambda: _pickled_npz(x, y),
        "complex x": lambda: npz(x=x.astype(np.complex64), y=y),
        "header lies 100 GB": lambda: npy_header_lie((100_000, 1000, 1000)),
        "header lies 1e20": lambda: npy_header_lie((10**10, 10**10)),
        "huge labels": lambda: npz(x=x, y=y * 10**9),
        "2 channels": lambda: npz(x=np.concatenate([x, x], axis=1), y=y),
    }
    return ops


def _pickled_npz(x, y) -> bytes:
    np = _np()
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([x[0], "evil"], dtype=object), y=y)
    return buffer.getvalue()


def png(width: int = SIDE, height: int = SIDE, mode: str = "L") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header declares ``width x height`` (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_ops(rng: random.Random) -> dict[str, Make]:
    """One broken image for an image folder."""
    good = png()
    ops = {
        "truncated png": lambda: good[: rng.randrange(len(good))],
        "flipped png": lambda: flip(rng, good, 3, 8),
        "bomb 30000x30000": lambda: png_declaring(30000, 30000),
        "bomb 100000x100000": lambda: png_declaring(100_000, 100_000),
        "bomb 2^31": lambda: png_declaring(2**31 - 1, 2**31 - 1),
        "zero size": lambda: png_declaring(0, 0),
        "text as png": lambda: b"not an image",
        "empty png": lambda: b"",
        "rgba": lambda: png(mode="RGBA"),
        "1x1": lambda: png(1, 1),
        "16 bit": lambda: png(mode="I;16"),
    }
    return ops


def csv_ops(rng: random.Random) -> dict[str, Make]:
    """A broken MNIST-style CSV (``label,p0..p63``)."""
    x, y = images()
    head = "label," + ",".join(f"p{i}" for i in range(SIDE * SIDE))
    rows = [f"{label}," + ",".join(map(str, img.reshape(-1))) for img, label in zip(x, y)]
    good = "\n".join([head, *rows]) + "\n"
    ops = {
        "extra field": lambda: good + "1," * 70 + "\n",
        "text pixel": lambda: good.replace(",128,", ",x,", 1) + "0," + "x," * 63 + "x\n",
        "no label column": lambda: good.replace("label,", "lbl,", 1),
        "nan pixel": lambda: good + "1," + ",".join(["nan"] * 64) + "\n",
        "nan label": lambda: good + "nan," + ",".join(["0"] * 64) + "\n",
        "inf pixel": lambda: good + "1," + ",".join(["1e400"] * 64) + "\n",
        "empty": lambda: "",
        "header only": lambda: head + "\n",
        "63 pixels": lambda: "\n".join(r.rsplit(",", 1)[0] for r in [head, *rows]) + "\n",
        "truncated": lambda: good[: rng.randrange(len(good))],
        "junk bytes": lambda: good[:500] + "\x00\xff\x1b" + good[500:],
        "quote": lambda: good + '"' + "1," * 64 + "\n",
    }
    return {
        name: (lambda make=make: make().encode("utf-8", "surrogateescape"))
        for name, make in ops.items()
    }


def idx(array_bytes: bytes, dims: tuple[int, ...], code: int = 0x08) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims) + array_bytes


@functools.cache
def gzip_bomb() -> bytes:
    """About 2 GiB of zeros in 2 MB: 32 gzip members of 64 MiB each."""
    member = gzip.compress(bytes(64 << 20), compresslevel=1, mtime=0)
    return member * 32


def idx_ops(rng: random.Random) -> dict[str, Callable[[], dict[str, bytes]]]:
    """A broken MNIST-style IDX folder: {file name: bytes}."""
    x, y = images()
    images_ = idx(x.tobytes(), (N, SIDE, SIDE))
    labels = idx(y.astype("uint8").tobytes(), (N,))
    name_x, name_y = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
    ops = {
        "truncated header": lambda: {name_x: images_[:6], name_y: labels},
        "bad magic": lambda: {name_x: b"\x01" + images_[1:], name_y: labels},
        "header lies": lambda: {name_x: idx(x.tobytes(), (2**31 - 1,) * 3), name_y: labels},
        "ndim 0": lambda: {name_x: idx(b"", ()), name_y: labels},
        "ndim 255": lambda: {name_x: bytes([0, 0, 8, 255]) + bytes(64), name_y: labels},
        "counts differ": lambda: {name_x: images_, name_y: idx(bytes(5), (5,))},
        "truncated gz": lambda: {name_x + ".gz": gzip.compress(images_)[:-20], name_y: labels},
        "junk gz": lambda: {name_x + ".gz": b"\x1f\x8b" + bytes(40), name_y: labels},
        "gz bomb": lambda: {name_x + ".gz": gzip_bomb(), name_y: labels},
        "float labels": lambda: {name_x: images_, name_y: idx(bytes(8 * N), (N,), 0x0E)},
        "negative dims": lambda: {name_x: idx(b"", (-1, 8, 8)), name_y: labels},
    }
    return ops


def _folder(bad: bytes) -> dict[str, bytes]:
    """An image folder of three classes, one image of which is ``bad``."""
    found = {f"imgs/{c}/{i}.png": png() for c in "abc" for i in range(4)}
    found["imgs/b/2.png"] = bad
    return found


# format -> (recipe data.name, data.path, the ops, how an op's output becomes files)
FORMATS: dict[str, tuple[str, Callable, Callable[[Any], dict[str, bytes]]]] = {
    "npz": ("data.npz", npz_ops, lambda data: {"data.npz": data}),
    "csv": ("data.csv", csv_ops, lambda data: {"data.csv": data}),
    "idx": ("mnist", idx_ops, lambda found: {f"mnist/{k}": v for k, v in found.items()}),
    "folder": ("imgs", png_ops, _folder),
}


def data_set(rng: random.Random, turn: int) -> tuple[str, str, dict[str, bytes], str]:
    """(source name, path, files, what was done): broken data set number ``turn`` of a
    round over every format's every breakage, so a few dozen cases cover them all."""
    kinds = [(fmt, op) for fmt, (_, ops, _) in FORMATS.items() for op in ops(rng)]
    fmt, op = kinds[turn % len(kinds)]
    path, ops, place = FORMATS[fmt]
    return fmt, path, place(ops(rng)[op]()), op
