"""Failure classes the fuzz suite found, each with a pinned reproduction.

``FIXED``: classes fixed in issue 11; ``test_known.py`` replays each reproduction and it must
end ok or refused, so a class that comes back fails by name, whatever the random cases hit.
``KNOWN``: classes found but not fixed yet. The fuzz tests forgive an outcome that one of them
matches (and count it in the summary line), and its reproduction runs as a strict xfail: when
the fix lands, the xfail passes, the suite fails, and the entry moves to ``FIXED``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fuzz import files
from tests.fuzz.recipes import TINY
from tests.fuzz.runner import Outcome

Files = Callable[[], dict[str, bytes | None]]


def _data(source: str, path: str, found: dict[str, bytes]) -> dict[str, bytes | None]:
    """The tiny recipe reading ``path`` as a ``source`` data set, with its files."""
    recipe = TINY.replace("  name: synthetic\n", f"  name: {source}\n  path: {path}\n")
    return {"data.yaml": recipe.encode(), **found}


def _idx(images: bytes) -> dict[str, bytes | None]:
    labels = files.idx(bytes(files.N), (files.N,))
    found = {"mnist/train-images-idx3-ubyte": images, "mnist/train-labels-idx1-ubyte": labels}
    return _data("idx", "mnist", found)


def _gz(images: bytes) -> dict[str, bytes | None]:
    labels = files.idx(bytes(files.N), (files.N,))
    found = {"mnist/train-images-idx3-ubyte.gz": images, "mnist/train-labels-idx1-ubyte": labels}
    return _data("idx", "mnist", found)


def _huge_labels() -> dict[str, bytes | None]:
    x, y = files.images()
    return _data("npz", "data.npz", {"data.npz": files.npz(x=x, y=y * 10**9)})


def _has(text: str) -> Callable[[Outcome], bool]:
    return lambda o: text in o.result["stderr"]


def _noted(verdict: str, note: str) -> Callable[[Outcome], bool]:
    return lambda o: o.verdict == verdict and note in o.case.note


@dataclass(frozen=True)
class Known:
    owner: str  # the branch whose fix closes it
    summary: str
    match: Callable[[Outcome], bool]
    argv: list[str]  # the pinned reproduction ...
    files: Files = dict  # ... its files (built when it runs) ...
    crafted: dict[str, str] = field(default_factory=dict)  # ... run files: crafted name ...
    note: str = ""  # ... the note its case carries (some classes match on the note) ...
    run: bool = False  # ... and whether the trained run is copied in as ``run``


TRAIN = ["train", "data.yaml", "--out", "out"]
DATA_SIZES = ("tiny: data.samples=", "tiny: data.classes=", "tiny: data.resize=")
FIXED: dict[str, Known] = {
    "data-decompression-bomb": Known(
        "datain",
        "a PNG declaring 30000x30000 pixels: internal DecompressionBombError",
        _has("DecompressionBombError"),
        TRAIN,
        lambda: _data("folder", "imgs", files._folder(files.png_declaring(30000, 30000))),
    ),
    "data-npz-corrupt": Known(
        "datain",
        "a truncated or bit-flipped .npz: internal BadZipFile",
        _has("BadZipFile"),
        TRAIN,
        lambda: _data("npz", "data.npz", {"data.npz": files.npz(x=files.images()[0])[:300]}),
    ),
    "data-npz-header-lies": Known(
        "datain",
        "an .npz whose header declares 100 GB: internal MemoryError",
        _noted("memory", "header lies"),
        TRAIN,
        lambda: _data("npz", "data.npz", {"data.npz": files.npy_header_lie((10**5, 10**6))}),
        note="header lies 100 GB",
    ),
    "data-huge-labels": Known(
        "datain",
        "npz labels in the billions: a class list that long, killed past 1 GB",
        _noted("memory", "huge labels"),
        TRAIN,
        _huge_labels,
        note="huge labels",
    ),
    "data-idx-truncated-header": Known(
        "datain",
        "an IDX file shorter than its header (or ndim 255): internal struct.error",
        _has("unpack requires a buffer"),
        TRAIN,
        lambda: _idx(bytes([0, 0, 8, 3, 0, 0])),
    ),
    "data-gz-truncated": Known(
        "datain",
        "a truncated .gz IDX file: click's 'aborted' (EOFError), exit 1, no file named",
        lambda o: o.result["stderr"].strip().endswith("aborted"),
        TRAIN,
        lambda: _gz(files.gzip.compress(files.idx(bytes(64 * files.N), (files.N, 8, 8)))[:-20]),
    ),
    "data-gz-bomb": Known(
        "datain",
        "a 2 MB .gz IDX file holding 2 GiB of zeros: read whole, killed past 1 GB",
        _noted("memory", "gz bomb"),
        TRAIN,
        lambda: _gz(files.gzip_bomb()),
        note="gz bomb",
    ),
    "data-size-unbounded": Known(
        "sizes (pre-training allocation check) or datain",
        "data.samples, data.classes or data.resize past what memory holds (synthetic data of "
        "2^31 samples, resize [100000, 100000]): internal overflow or allocator errors instead "
        "of a line naming the key",
        lambda o: o.verdict in ("internal", "memory") and o.case.note.startswith(DATA_SIZES),
        [*TRAIN, "--set", "data.resize=[100000, 100000]"],
        lambda: {"data.yaml": TINY.encode()},
        note="tiny: data.resize=[100000, 100000]",
    ),
    "resume-weights-mismatch": Known(
        "runfolder",
        "train --resume with weights that do not fit the recipe (valid checksum): internal "
        "RuntimeError from load_state_dict in nn/training.py and nn/experiment.py "
        "(cnnkit.train.checkpoint.load_weights turns it into one line)",
        lambda o: "loading state_dict" in o.result["stderr"] and "--resume" in o.case.argv,
        ["train", "--resume", "run"],
        crafted={"run/last.pt": "model: wrong shape"},
    ),
    "resume-recipe-not-utf8": Known(
        "runfolder",
        "train --resume of a run whose recipe.yaml is not UTF-8: internal UnicodeDecodeError "
        "(cnnkit/train/runs.py reads it as text)",
        lambda o: "UnicodeDecodeError" in o.result["stderr"] and "--resume" in o.case.argv,
        ["train", "--resume", "run"],
        lambda: {"run/recipe.yaml": b"input: [1, 8, 8]\n# \xff\xfe\x84\n"},
        run=True,
    ),
}


KNOWN: dict[str, Known] = {}  # none open


def known_class(outcome: Outcome) -> str | None:
    """The known class a failed outcome belongs to, or None."""
    for name, known in KNOWN.items():
        if known.match(outcome):
            return name
    return None
