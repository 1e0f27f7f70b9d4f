"""Hostile and broken data files: each is one DataError naming the file, never an internal
error, a hang or gigabytes of memory; NaN/inf pixels, labels and targets are caught at load."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnkit.errors import DataError
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from cnnkit.train.data.checks import MAX_CLASSES, MAX_IMAGE_PIXELS
from tests.clitools import run_cli

RNG = np.random.default_rng(0)
N = 12


def _x(n: int = N, dtype=np.uint8) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 4, 4)).astype(dtype)


def _y(n: int = N) -> np.ndarray:
    return np.arange(n) % 3


def _npz(path: Path, **arrays) -> dict:
    np.savez(path, **arrays)
    return {"name": "npz", "path": str(path)}


def _png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` grey pixels, with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1) * 4, 9))
        + chunk(b"IEND", b"")
    )


def _folder_with(root: Path, name: str, content: bytes) -> dict:
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_x(1)[0]).save(root / cls / f"{i}.png")
    (root / "a" / name).write_bytes(content)
    return {"name": "folder", "path": str(root)}


def _idx(array: np.ndarray, kind: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0D: ">f4"}[kind]
    header = bytes([0, 0, kind, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(dtype).tobytes()


def _idx_folder(root: Path, images: bytes, labels: bytes, gz: bool = False) -> dict:
    root.mkdir()
    suffix = ".gz" if gz else ""
    for part, data in (("images-idx3", images), ("labels-idx1", labels)):
        file = root / f"train-{part}-ubyte{suffix}"
        file.write_bytes(gzip.compress(data) if gz else data)
    return {"name": "idx", "path": str(root)}


def _csv(path: Path, rows: list[str], header: str = "label,a,b,c,d", **extra) -> dict:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return {"name": "csv", "path": str(path), **extra}


def _pixel_rows(n: int = N) -> list[str]:
    return [f"{i % 3},1,2,3,4" for i in range(n)]


def _nan_x(tmp: Path) -> dict:
    x = _x(dtype=np.float32) / 255
    x[7, 1, 1], x[9, 0, 0] = np.nan, np.inf
    return _npz(tmp / "d.npz", x=x, y=_y())


def _nan_at(index: int) -> np.ndarray:
    x = _x(dtype=np.float32) / 255
    x[index, 2, 3] = np.nan
    return x


def _float_labels(bad: float) -> np.ndarray:
    y = _y().astype(float)
    y[5] = bad
    return y


def _targets_with_nan() -> np.ndarray:
    y = RNG.random((N, 2)).astype(np.float32)
    y[4, 1] = np.nan
    return y


def _gz_truncated(tmp: Path) -> dict:
    cfg = _idx_folder(tmp / "m", _idx(_x()), _idx(_y()), gz=True)
    file = tmp / "m" / "train-images-idx3-ubyte.gz"
    file.write_bytes(file.read_bytes()[:-12])  # the stream's end and its CRC are gone
    return cfg


def _gz_corrupt(tmp: Path) -> dict:
    cfg = _idx_folder(tmp / "m", _idx(RNG.integers(0, 256, (N, 16, 16))), _idx(_y()), gz=True)
    file = tmp / "m" / "train-images-idx3-ubyte.gz"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the deflate stream
    file.write_bytes(bytes(data))
    return cfg


def _truncated_npz(tmp: Path) -> dict:
    cfg = _npz(tmp / "d.npz", x=_x(), y=_y())
    data = (tmp / "d.npz").read_bytes()
    (tmp / "d.npz").write_bytes(data[: len(data) // 2])
    return cfg


CASES = {
    # name: (build(tmp) -> data config, the recipe input, what the message says)
    "png_bomb_over_pil_limit": (
        lambda t: _folder_with(t / "f", "bomb.png", _png_declaring(40000, 40000)),
        "bomb.png: image declares 1,600,000,000 pixels, over the 67,108,864 (8192x8192)",
    ),
    "png_bomb_under_pil_limit": (
        lambda t: _folder_with(t / "f", "bomb.png", _png_declaring(12000, 12000)),
        "bomb.png: image declares 12000x12000 pixels",
    ),
    "png_truncated": (
        lambda t: _folder_with(t / "f", "t.png", _png_declaring(8, 8)[:40]),
        "t.png: cannot read image",
    ),
    "png_empty": (lambda t: _folder_with(t / "f", "e.png", b""), "e.png: cannot read image"),
    "npz_truncated": (_truncated_npz, "d.npz: cannot read npz: File is not a zip file"),
    "npz_scalar_arrays": (
        lambda t: _npz(t / "d.npz", x=np.float32(1), y=np.int64(0)),
        "d.npz: x and y must be arrays with one entry per image",
    ),
    "npz_text_images": (
        lambda t: _npz(t / "d.npz", x=np.full((N, 4, 4), "a"), y=_y()),
        "d.npz: x: images must hold numbers, got text",
    ),
    "npz_complex_images": (
        lambda t: _npz(t / "d.npz", x=_x().astype(complex), y=_y()),
        "d.npz: x: images must hold numbers, got complex",
    ),
    "npz_2d_labels": (
        lambda t: _npz(t / "d.npz", x=_x(), y=np.zeros((N, 2))),
        "d.npz: y: labels must be one per image (shape [N]), got shape [12, 2]",
    ),
    "npz_huge_label": (
        lambda t: _npz(t / "d.npz", x=_x(), y=np.where(_y() == 1, 10**12, _y())),
        f"d.npz: y: label 1e+12 at index 1 is not a class index below {MAX_CLASSES:,}",
    ),
    "npz_nan_pixels": (_nan_x, "d.npz: x: 2 images hold NaN or inf pixels (first: index 7)"),
    "npz_pixels_past_float32": (
        lambda t: _npz(t / "d.npz", x=_x().astype(float) * 1e300, y=_y()),
        "d.npz: x: 12 images hold NaN or inf pixels (first: index 0)",
    ),
    "npz_nan_label": (
        lambda t: _npz(t / "d.npz", x=_x(), y=_float_labels(np.nan)),
        "d.npz: y: 1 label is NaN or inf (first: index 5)",
    ),
    "npz_inf_label": (
        lambda t: _npz(t / "d.npz", x=_x(), y=_float_labels(-np.inf)),
        "d.npz: y: 1 label is NaN or inf (first: index 5)",
    ),
    "npz_nan_target": (
        lambda t: {
            **_npz(t / "d.npz", x=_x(), y=_targets_with_nan()),
            "task": "regress",
        },
        "d.npz: y: 1 sample has NaN or inf targets (first: index 4)",
    ),
    "npz_text_targets": (
        lambda t: {**_npz(t / "d.npz", x=_x(), y=np.full(N, "a")), "task": "regress"},
        "d.npz: y: targets must be numbers, got text",
    ),
    "idx_truncated_header": (
        lambda t: _idx_folder(t / "m", _idx(_x())[:9], _idx(_y())),
        "train-images-idx3-ubyte: truncated IDX header: 3 dimensions need 16 bytes, the file has 9",
    ),
    "idx_no_dimensions": (
        lambda t: _idx_folder(t / "m", bytes([0, 0, 8, 0]), _idx(_y())),
        "train-images-idx3-ubyte: IDX header declares 0 dimensions",
    ),
    "idx_negative_dimension": (
        lambda t: _idx_folder(t / "m", bytes([0, 0, 8, 1]) + struct.pack(">i", -5), _idx(_y())),
        "train-images-idx3-ubyte: IDX header has a negative dimension: [-5]",
    ),
    "idx_gz_truncated": (
        _gz_truncated,
        "train-images-idx3-ubyte.gz: cannot read IDX file: the compressed data ends early",
    ),
    "idx_gz_corrupt": (_gz_corrupt, "train-images-idx3-ubyte.gz: cannot read IDX file"),
    "idx_gz_claims_more_than_deflate_holds": (
        lambda t: _idx_folder(
            t / "m", bytes([0, 0, 8, 3]) + struct.pack(">3i", 2**30, 2**30, 2), _idx(_y()), True
        ),
        "train-images-idx3-ubyte.gz: IDX header declares over 1,000,000,000,000,000 bytes",
    ),
    "idx_nan_pixels": (
        lambda t: _idx_folder(t / "m", _idx(_nan_at(3), 0x0D), _idx(_y())),
        "train-images-idx3-ubyte: 1 image holds NaN or inf pixels (first: index 3)",
    ),
    "idx_nan_labels": (
        lambda t: _idx_folder(t / "m", _idx(_x()), _idx(_float_labels(np.nan), 0x0D)),
        "train-labels-idx1-ubyte: 1 label is NaN or inf (first: index 5)",
    ),
    "csv_empty_label": (
        lambda t: _csv(t / "d.csv", [*_pixel_rows(N - 1), ",1,2,3,4"]),
        "d.csv: column 'label' has 1 empty or NaN cell (first: data row 12)",
    ),
    "csv_nan_label": (
        lambda t: _csv(t / "d.csv", ["nan,1,2,3,4", *_pixel_rows()]),
        "d.csv: column 'label' has 1 empty or NaN cell (first: data row 1)",
    ),
    "csv_nan_pixel": (
        lambda t: _csv(t / "d.csv", [*_pixel_rows(5), "1,nan,2,3,4", *_pixel_rows(5)]),
        "d.csv: 1 image holds NaN or inf pixels (first: data row 6)",
    ),
    "csv_short_row": (
        lambda t: _csv(t / "d.csv", [*_pixel_rows(3), "1,2,3", *_pixel_rows(5)]),
        "d.csv: 1 image holds NaN or inf pixels (first: data row 4)",
    ),
    "csv_inf_pixel": (
        lambda t: _csv(t / "d.csv", [*_pixel_rows(2), "1,1e400,2,3,4"]),
        "d.csv: 1 image holds NaN or inf pixels (first: data row 3)",
    ),
    "csv_header_only": (lambda t: _csv(t / "d.csv", []), "d.csv: the table has a header but no"),
    "csv_empty_path": (
        lambda t: _csv(t / "d.csv", ["a.png,x", ",y"], header="path,label"),
        "d.csv: column 'path' has 1 empty or NaN cell (first: data row 2)",
    ),
    "csv_nan_target": (
        lambda t: _csv(
            t / "d.csv", ["1,2,3,4,0.5", "1,2,3,4,nan"], "a,b,c,d,t", task="regress", targets=["t"]
        ),
        "d.csv: column 't' has 1 empty or NaN cell (first: data row 2)",
    ),
    "csv_inf_target": (
        lambda t: _csv(
            t / "d.csv", ["1,2,3,4,0.5", "1,2,3,4,-inf"], "a,b,c,d,t", task="regress", targets=["t"]
        ),
        "d.csv: 1 sample has NaN or inf targets (first: data row 2)",
    ),
    "csv_text_target": (
        lambda t: _csv(
            t / "d.csv", ["1,2,3,4,0.5", "1,2,3,4,abc"], "a,b,c,d,t", task="regress", targets=["t"]
        ),
        "d.csv: t: targets must be numbers, got text",
    ),
}


def _config(raw: dict):
    return parse_data({"val": 0, "test": 0, **raw}, NoLocation("test"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hostile_file_is_one_data_error_naming_it(tmp_path, case):
    build, message = CASES[case]
    raw = build(tmp_path)
    with pytest.raises(DataError) as caught:
        load_data(_config(raw), (1, 4, 4))
    text = str(caught.value)
    assert message in text and str(tmp_path) in text and "\n" not in text, text


# The same files through `cnnkit train` (a one-line error, exit 2): one case per source kind.
CLI_CASES = [
    "png_bomb_over_pil_limit",
    "npz_truncated",
    "npz_nan_pixels",
    "idx_gz_truncated",
    "idx_truncated_header",
    "csv_nan_label",
]

RECIPE = """\
input: [1, 4, 4]
model:
  layers:
    - {conv: {out: 2, k: 3}}
    - flatten
    - {linear: 3}
train: {epochs: 1, batch_size: 4, device: cpu}
"""


@pytest.mark.parametrize("case", CLI_CASES)
def test_train_on_a_hostile_file_is_one_line_and_exit_2(tmp_path, case):
    build, message = CASES[case]
    raw = build(tmp_path)
    recipe = tmp_path / "r.yaml"
    data = ", ".join(f"{k}: {v!r}" if k != "path" else f"{k}: '{v}'" for k, v in raw.items())
    recipe.write_text(RECIPE + f"data: {{{data}}}\n")
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "run"))
    assert r.code == 2, r
    assert r.err.count("\n") == 1 and r.err.startswith("error: ") and message in r.err, r.err
    assert "internal error" not in r.err and not (tmp_path / "run").exists()


def test_a_bomb_png_is_refused_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    """144 M declared pixels in a file of a few hundred bytes: PIL only warns at that size and
    would decode it (about 144 MB); the header check must come first."""
    from PIL import Image

    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(
        Image.Image, "load", lambda self: (decoded.append(self.size), real_load(self))[1]
    )
    raw = _folder_with(tmp_path / "f", "bomb.png", _png_declaring(12000, 12000))
    assert (tmp_path / "f" / "a" / "bomb.png").stat().st_size < 2000
    with pytest.raises(DataError, match="bomb.png: image declares 12000x12000 pixels"):
        load_data(_config(raw), (1, 4, 4))
    assert (12000, 12000) not in decoded and MAX_IMAGE_PIXELS < 12000 * 12000


def test_a_gz_bomb_is_read_no_further_than_its_header_declares(tmp_path):
    """64 MB of zeros after a header declaring 12 images of 4x4: reading stops at 193 bytes."""
    root = tmp_path / "m"
    root.mkdir()
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    with open(root / "train-images-idx3-ubyte.gz", "wb") as out:
        out.write(stream.compress(_idx(_x())))
        zeros = bytes(1 << 20)
        for _ in range(64):
            out.write(stream.compress(zeros))
        out.write(stream.flush())
    (root / "train-labels-idx1-ubyte").write_bytes(_idx(_y()))
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="IDX header says 192 bytes of data, found more"):
            load_data(_config({"name": "idx", "path": str(root)}), (1, 4, 4))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # the old reader inflated all 64 MB


def test_good_files_still_load_unchanged(tmp_path):
    """The checks refuse only what is wrong: uint8, float and bool images, integer, integral
    float and string labels, and targets in [N] or [N, T] all load as before."""
    x = _x()
    for y in (_y(), _y().astype(float), np.array(list("abc") * 4)):
        data = load_data(_config(_npz(tmp_path / "ok.npz", x=x, y=y)), (1, 4, 4))
        assert data.classes in (("0", "1", "2"), ("a", "b", "c"))
        assert np.array_equal(np.bincount(data.train.y.numpy()), np.bincount(_y()))
    booleans = load_data(_config(_npz(tmp_path / "b.npz", x=x > 127, y=_y())), (1, 4, 4))
    assert len(booleans.train) == N
    targets = RNG.random(N).astype(np.float32)
    cfg = {**_npz(tmp_path / "r.npz", x=x, y=targets), "task": "regress", "normalize": False}
    data = load_data(_config(cfg), (1, 4, 4))
    assert np.array_equal(np.sort(data.train.y.numpy()[:, 0]), np.sort(targets))


def test_an_npz_header_claiming_a_terabyte_is_refused_before_allocating(tmp_path):
    """numpy allocates an array's declared shape before reading it: 10**12 bytes from a
    1 KB entry was a MemoryError (an internal error) or a swap storm."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 1000, 1000)}
    )
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(1000))
        labels = io.BytesIO()
        np.save(labels, _y())
        archive.writestr("y.npy", labels.getvalue())
    with pytest.raises(DataError) as caught:
        load_data(_config({"name": "npz", "path": str(tmp_path / "lie.npz")}), (1, 4, 4))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "lie.npz")), message
    assert "array 'x' declares shape [1000000, 1000, 1000]" in message and "truncated" in message


def test_a_fifo_in_a_path_table_is_refused_not_waited_on(tmp_path):
    """Opening a FIFO blocks until a writer comes: the loader must not wait for ever."""
    import os
    import threading

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.png")
    raw = _csv(tmp_path / "t.csv", ["pipe.png,a"], header="path,label")
    outcome = []

    def load() -> None:
        try:
            load_data(_config(raw), (1, 4, 4))
        except DataError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=load, daemon=True)  # a stuck open() cannot be cancelled
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock the reader so the thread can end
        with open(tmp_path / "pipe.png", "wb"):
            pass
    assert outcome == [f"{tmp_path / 'pipe.png'}: not a regular file"]


def _zip(data: bytes) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("d.csv", data)
    return out.getvalue()


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_compressed_csv_is_one_data_error(tmp_path, suffix, damage):
    """pandas decompresses by suffix: a truncated stream raised EOFError, which reached the
    CLI as click's bare "aborted", and LZMAError/BadZipFile as internal errors."""
    import bz2
    import lzma

    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zip": _zip}
    full = compress[suffix](("label,a,b,c,d\n" + "1,2,3,4,5\n" * 200).encode())
    file = tmp_path / f"d.csv{suffix}"
    file.write_bytes(full[: len(full) // 2] if damage == "truncated" else b"not compressed" * 3)
    with pytest.raises(DataError) as caught:
        load_data(_config({"name": "csv", "path": str(file)}), (1, 2, 2))
    message = str(caught.value)
    assert message.startswith(f"{file}: cannot read CSV: ") and "\n" not in message, message


def test_eval_on_nan_data_is_one_line_naming_the_file(tmp_path):
    """`cnnkit eval --data` reads through the same checks: a NaN image would otherwise be
    scored as a wrong prediction, silently."""
    from tests.trainkit import tiny_recipe

    run = tmp_path / "run"
    trained = run_cli(
        "train", str(tiny_recipe(tmp_path)), "--out", str(run), "--set", "train.epochs=1"
    )
    assert trained.code == 0, trained
    x = RNG.integers(0, 256, (6, 8, 8)).astype(np.float32)
    x[4, 3, 3] = np.nan
    np.savez(tmp_path / "new.npz", x=x, y=np.arange(6) % 3)
    r = run_cli("eval", str(run), "--data", f"npz:{tmp_path / 'new.npz'}")
    assert r.code == 2, r
    assert (
        r.err
        == f"error: {tmp_path / 'new.npz'}: x: 1 image holds NaN or inf pixels (first: index 4)\n"
    )


def _float_tiffs(root: Path, levels: dict[str, float]) -> dict:
    from PIL import Image

    for name, level in levels.items():
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6), level, np.float32), mode="F").save(
                root / name / f"{i}.tif"
            )
    return {"name": "folder", "path": str(root), "normalize": False}


@pytest.mark.parametrize("channels", [1, 3])
def test_float_tiffs_keep_their_values(tmp_path, channels):
    """A 32-bit float image went through 8-bit conversion: 0.25 and 0.75 both became 0."""
    raw = _float_tiffs(tmp_path / "f", {"a": 0.25, "b": 0.75})
    data = load_data(_config(raw), (channels, 4, 4))
    by_class = {int(label): float(x.mean()) for x, label in zip(data.train.x, data.train.y)}
    assert by_class == {0: 0.25, 1: 0.75}


def test_a_float_tiff_with_nan_names_the_file(tmp_path):
    from PIL import Image

    raw = _float_tiffs(tmp_path / "f", {"a": 0.25, "b": 0.75})
    pixels = np.full((6, 6), 0.5, np.float32)
    pixels[2, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "f" / "b" / "nan.tif")
    with pytest.raises(DataError) as caught:
        load_data(_config(raw), (1, 4, 4))
    assert (
        str(caught.value)
        == f"{tmp_path / 'f' / 'b' / 'nan.tif'}: the image holds NaN or inf pixels"
    )


def test_16_bit_pngs_keep_their_values(tmp_path):
    """8-bit conversion clipped every 16-bit value over 255 to 255: 1000 and 60000 looked
    the same. The oracle: the values written, over 65535."""
    from PIL import Image

    levels = {"a": 1000, "b": 60000}
    for name, level in levels.items():
        (tmp_path / "f" / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.full((6, 6), level, np.uint16)
            Image.fromarray(pixels).save(tmp_path / "f" / name / f"{i}.png")
    raw = {"name": "folder", "path": str(tmp_path / "f"), "normalize": False}
    data = load_data(_config(raw), (1, 4, 4))
    by_class = {int(label): float(x.mean()) for x, label in zip(data.train.x, data.train.y)}
    assert by_class == pytest.approx({0: 1000 / 65535, 1: 60000 / 65535})
