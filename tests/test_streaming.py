"""``data.cache: stream``: image files decoded per batch train exactly as the in-memory path.

Oracles: the in-memory path itself for the decoded pixels and the trained weights (it is the
independently tested reader: same PIL decode, its tensors indexed by the same order), NumPy
float64 sums for the streaming mean/std, an uninterrupted run for a killed-and-resumed one,
and set arithmetic for the DDP shards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from cnnkit.train.loop import _epoch_order
from cnnkit.train.runtime import World
from tests.clitools import run_cli
from tests.trainkit import TINY_MODEL, summary

MODEL = TINY_MODEL.replace("linear: 10", "linear: 3")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """3 classes x 30 grey 8x8 PNGs whose brightness tells the class (some RGB, some 10x12:
    the decoder converts and resizes them as the in-memory reader does)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("streaming") / "imgs"
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(30):
            shape = (10, 12, 3) if i % 7 == 0 else (8, 8)
            pixels = (rng.integers(0, 80, shape) + 60 * c).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i:02d}.png")
    return root


def data(path: Path, **keys) -> object:
    return parse_data({"name": "folder", "path": str(path), **keys}, NoLocation())


def recipe(folder: Path, images: Path, name: str, data_keys: str, epochs: int = 2) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        MODEL
        + f"data:\n  name: folder\n  path: {images}\n{data_keys}"
        + f"train:\n  epochs: {epochs}\n  batch_size: 16\n  device: cpu\n",
        encoding="utf-8",
    )
    return path


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model"]


def all_batches(split, size: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    parts = list(split.slices(range(0, len(split), size), size))
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


def test_streamed_splits_hold_the_in_memory_pixels_and_labels(images):
    stats = ((0.4,), (0.2,))
    memory = load_data(data(images, cache="memory"), (1, 8, 8), stats=stats)
    stream = load_data(data(images, cache="stream", workers=0), (1, 8, 8), stats=stats)
    assert (memory.cache, stream.cache) == ("memory", "stream")
    for name in ("train", "val", "test"):
        x, y = all_batches(getattr(stream, name))
        assert torch.equal(y, getattr(memory, name).y), name
        assert torch.equal(x, getattr(memory, name).x), name  # bit for bit


def test_streamed_mean_and_std_are_the_exact_pixel_statistics(images):
    stream = load_data(data(images, cache="stream", workers=0), (1, 8, 8))
    memory = load_data(data(images, cache="memory"), (1, 8, 8))
    from PIL import Image

    pixels = np.stack(  # NumPy float64 over the train files, decoded by PIL directly
        [
            np.asarray(Image.open(f).convert("L").resize((8, 8), Image.Resampling.BILINEAR))
            for f in stream.train.files
        ]
    ).astype(np.float64)
    assert stream.mean[0] == pytest.approx(pixels.mean() / 255, rel=1e-12)
    assert stream.std[0] == pytest.approx(pixels.std(ddof=1) / 255, rel=1e-12)
    assert stream.mean[0] == pytest.approx(memory.mean[0], rel=1e-6)  # float32 reduction there
    assert stream.std[0] == pytest.approx(memory.std[0], rel=1e-6)


def test_memory_and_stream_train_the_same_weights(tmp_path, images):
    """Without normalisation the inputs are bit-identical, and so are the weights; with it
    the two mean/std differ in float32's last bits (exact sums here, a float32 reduction in
    memory), and the weights by far less than 1e-5 after two epochs."""
    for normalize, bound, workers in (("false", 0.0, 2), ("true", 1e-5, 0)):
        runs = {}
        for cache in ("memory", "stream"):
            keys = f"  cache: {cache}\n  workers: {workers}\n  normalize: {normalize}\n"
            r = run_cli("train", str(recipe(tmp_path, images, cache, keys)), "--out",
                        str(tmp_path / f"{cache}{normalize}"), "--json")  # fmt: skip
            assert r.code == 0, r.err
            runs[cache] = tmp_path / f"{cache}{normalize}"
            assert summary(runs[cache])["data"]["cache"] == cache
        a, b = weights(runs["memory"]), weights(runs["stream"])
        gap = max((a[k] - b[k]).abs().max().item() for k in a)
        assert gap <= bound, (normalize, gap)


def test_zero_and_two_workers_give_the_same_batches(images):
    loaded = [load_data(data(images, cache="stream", workers=w), (1, 8, 8)) for w in (0, 2)]
    order = torch.randperm(len(loaded[0].train), generator=torch.Generator().manual_seed(3))
    zero, two = (list(d.train.batches(order, 10)) for d in loaded)
    assert len(zero) == len(two) == 7
    for (x0, y0), (x2, y2) in zip(zero, two):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_each_rank_streams_its_own_disjoint_shard(images, size):
    memory = load_data(data(images, cache="memory"), (1, 8, 8))
    stream = load_data(data(images, cache="stream", workers=0), (1, 8, 8))
    n, shards = len(stream.train), []
    for rank in range(size):
        config = SimpleNamespace(seed=5, sampler="shuffle")
        loop = SimpleNamespace(config=config, world=World(rank, size))
        order, _ = _epoch_order(loop, stream.train, epoch=1)
        shards.append(order.tolist())
        for (x, y), (xm, ym) in zip(stream.train.batches(order, 8), memory.train.batches(order, 8)):
            assert torch.equal(y, ym) and torch.allclose(x, xm, atol=1e-6)
    flat = [i for shard in shards for i in shard]
    assert len(flat) == len(set(flat)) == n - n % size  # disjoint, and all but the remainder
    assert len({len(s) for s in shards}) == 1  # equal shares: DDP steps in lockstep


def test_auto_streams_only_over_the_memory_budget(images):
    # 90 images stored at 128x128 in float32 are 5.6 MiB; at 8x8, 23 KiB.
    small = load_data(data(images, memory_budget=1), (1, 8, 8))
    large = load_data(data(images, memory_budget=1, resize=[128, 128], workers=0), (1, 8, 8))
    roomy = load_data(data(images, memory_budget=6, resize=[128, 128]), (1, 8, 8))
    assert (small.cache, large.cache, roomy.cache) == ("memory", "stream", "memory")
    x, _ = all_batches(large.test)
    assert tuple(x.shape[1:]) == (1, 8, 8)  # eval splits centre-cropped to the input


def copy_images(images: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(images, to)
    return to


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.write_bytes(b"not a png at all"), "cannot read image: cannot identify"),
        (lambda f: f.write_bytes(f.read_bytes()[:60]), "cannot read image"),
        (lambda f: _wide(f), "a I;16 image (16-bit or float) keeps its values only in memory"),
    ],
    ids=["garbage", "truncated", "16-bit"],
)
def test_a_bad_file_fails_before_training_in_one_line(tmp_path, images, damage, message):
    root = copy_images(images, tmp_path / "imgs")
    bad = root / "c1" / "05.png"
    damage(bad)
    r = run_cli("train", str(recipe(tmp_path, root, "bad", "  cache: stream\n")), "--json")
    assert r.code == 2, r.err
    assert r.err.count("\n") == 1 and message in r.err and str(bad) in r.err, r.err
    assert r.out == ""


def _wide(file: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((8, 8), 300, dtype=np.uint16)).save(file)


def test_sources_that_cannot_stream_say_why(tmp_path, images):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 8, 8)), y=np.arange(4))
    npz = tmp_path / "npz.yaml"
    npz.write_text(MODEL + f"data:\n  name: npz\n  path: {tmp_path / 'x.npz'}\n  cache: stream\n")
    r = run_cli("train", str(npz), "--json")
    assert r.code == 2 and "data.cache: only folder and csv (image files) can stream" in r.err
    table = tmp_path / "pixels.csv"
    table.write_text("label," + ",".join(f"p{i}" for i in range(64)) + "\n" + "1," * 64 + "1\n")
    pixels = tmp_path / "pixels.yaml"
    pixels.write_text(MODEL + f"data:\n  name: csv\n  path: {table}\n  cache: stream\n")
    r = run_cli("train", str(pixels), "--json")
    assert r.code == 2 and "has no 'path' column of image paths" in r.err, r.err
    assert r.err.count("\n") == 1


def test_a_csv_of_paths_streams_like_the_folder(tmp_path, images):
    rows = [
        f"{f.relative_to(images.parent)},{f.parent.name}" for f in sorted(images.rglob("*.png"))
    ]
    (images.parent / "files.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    stats = ((0.4,), (0.2,))
    table = {"name": "csv", "path": str(images.parent / "files.csv")}
    folder = load_data(data(images, cache="memory"), (1, 8, 8), stats=stats)
    csv = load_data(parse_data({**table, "cache": "stream"}, NoLocation()), (1, 8, 8), stats=stats)
    assert csv.classes == folder.classes and csv.cache == "stream"
    x, y = all_batches(csv.test)
    assert torch.equal(x, folder.test.x) and torch.equal(y, folder.test.y)


@pytest.fixture
def one_thread():
    """In-process runs use one intra-op thread, like the subprocess (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_killed_streaming_run_resumes_to_the_uninterrupted_one(tmp_path, images, one_thread):
    """Killed by SIGKILL just after epoch 1's last.pt (tests/test_kill_resume.py's hook), with
    two workers and per-image augmentation; resumed in this process: the uninterrupted run's
    weights and metrics."""
    sample = "  sample_augment: [random_resized_crop, hflip, colour_jitter]\n"
    path = recipe(tmp_path, images, "resume", "  cache: stream\n  workers: 2\n" + sample, epochs=3)
    ref = run_cli("train", str(path), "--out", str(tmp_path / "ref"), "--json")
    assert ref.code == 0, ref.err
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CNNKIT_TEST_KILL_AT": "saved:last.pt:1"}
    killed = subprocess.run(
        [sys.executable, "-m", "cnnkit", "train", str(path), "--out", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    again = run_cli("train", "--resume", str(tmp_path / "run"), "--json")
    assert again.code == 0, again.err
    a, b = weights(tmp_path / "ref"), weights(tmp_path / "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    final = [{k: v for k, v in summary(run)["final"].items() if k not in ("time_s", "images_per_s")}
             for run in (tmp_path / "ref", tmp_path / "run")]  # fmt: skip
    assert final[0] == final[1]


def test_a_changed_file_refuses_the_resume(tmp_path, images):
    root = copy_images(images, tmp_path / "imgs")
    path = recipe(tmp_path, root, "changed", "  cache: stream\n  workers: 0\n", epochs=1)
    first = run_cli("train", str(path), "--out", str(tmp_path / "run"))  # the printed header
    assert first.code == 0, first.err
    assert "(63 train / 9 val / 18 test; cache: stream, 0 workers) ->" in first.err, first.err
    assert run_cli("train", "--resume", str(tmp_path / "run"), "--json").code == 0  # unchanged
    touched = root / "c2" / "11.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    r = run_cli("train", "--resume", str(tmp_path / "run"), "--json")
    assert r.code == 2 and "the data differs from the data this run was trained on" in r.err


@pytest.mark.slow  # two torchrun processes: about 25 s on 2 cores
def test_torchrun_ranks_stream_their_shards_to_the_one_process_weights(
    tmp_path, images, one_thread
):
    """2 ranks streaming (each its own half of every global batch) = 1 process in memory: 54
    train images, global batch 18, no dropout, no normalisation (tests/test_train_processes.py's
    criterion for the in-memory DDP path)."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    model = MODEL.replace("    - {dropout: 0.1, name: drop}\n", "")
    keys = "  val: 0.2\n  test: 0.2\n  normalize: false\n  workers: 1\n"
    train = "train:\n  epochs: 2\n  batch_size: 18\n  lr: 0.05\n  device: cpu\n"
    for cache in ("memory", "stream"):
        path = tmp_path / f"{cache}.yaml"
        data_keys = f"data:\n  name: folder\n  path: {images}\n  cache: {cache}\n{keys}"
        path.write_text(model + data_keys + train, encoding="utf-8")
    one = run_cli("train", str(tmp_path / "memory.yaml"), "--out", str(tmp_path / "one"), "--json")
    assert one.code == 0, one.err
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
    run += ["-m", "cnnkit", "train", str(tmp_path / "stream.yaml"), "--out", str(tmp_path / "ddp")]
    done = subprocess.run(
        run,
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = summary(tmp_path / "ddp")
    assert (ddp["world_size"], ddp["data"]["cache"], ddp["data"]["train"]) == (2, "stream", 54)
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_image_mask_pairs_stream_as_they_load_in_memory(tmp_path):
    from tests.test_segment import write_pairs

    root = write_pairs(tmp_path / "pairs", n=12, size=(14, 12))
    keys = {"name": "folder", "path": str(root), "task": "segment", "classes": 3}
    stats = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    both = [
        load_data(parse_data({**keys, "cache": c, "workers": 0}, NoLocation()), (3, 10, 12), stats)
        for c in ("memory", "stream")
    ]
    assert [b.cache for b in both] == ["memory", "stream"] and both[1].classes == both[0].classes
    for name in ("train", "val", "test"):
        x, y = all_batches(getattr(both[1], name), size=5)
        assert torch.equal(x, getattr(both[0], name).x) and torch.equal(y, getattr(both[0], name).y)


def test_a_streamed_segmentation_run_evaluates_to_its_summary(tmp_path):
    from tests.test_segment import docs_recipe, write_pairs

    root = write_pairs(tmp_path / "pairs", n=12, size=(14, 12))
    text = docs_recipe().replace("name: shapes", f"name: folder\n  path: {root}\n  classes: 4")
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(text.replace("data:\n", "data:\n  cache: stream\n  workers: 0\n", 1))
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "run"), "--set", "train.epochs=1",
                "--json")  # fmt: skip
    assert r.code == 0, r.err
    assert summary(tmp_path / "run")["data"]["cache"] == "stream"
    e = run_cli("eval", str(tmp_path / "run"), "--json")
    assert e.code == 0, e.err
    import json

    memory = run_cli("eval", str(tmp_path / "run"), "--set", "data.cache=memory", "--json")
    assert memory.code == 0, memory.err
    evaluated, recorded = json.loads(e.out), summary(tmp_path / "run")["test"]
    in_memory = json.loads(memory.out)  # the oracle: the in-memory reader's masks
    assert in_memory["ignored"] > 0
    assert evaluated["confusion"] == recorded["confusion"] == in_memory["confusion"]
    for key in ("loss", "pixel_accuracy", "ignored", "miou"):
        assert evaluated[key] == pytest.approx(recorded[key], rel=1e-6), key
        assert evaluated[key] == pytest.approx(in_memory[key], rel=1e-5), key


def test_bad_pairs_are_listed_before_streaming_starts(tmp_path):
    from cnnkit.errors import DataError
    from tests.test_segment import write_pairs

    root = write_pairs(tmp_path / "pairs", n=7)
    (root / "masks/s1.png").unlink()
    from PIL import Image

    Image.fromarray(np.full((10, 12), 7, np.uint8)).save(root / "masks/s3.png")
    keys = {"name": "folder", "path": str(root), "task": "segment", "classes": 3, "val": 0}
    with pytest.raises(DataError) as err:
        load_data(parse_data({**keys, "test": 0, "cache": "stream"}, NoLocation()), (3, 10, 12))
    assert "2 of 7 image/mask pairs are bad" in str(err.value) and "\n" not in str(err.value)
    listed = sorted(err.value.details)  # in the split's order; one line per bad pair
    assert "s1" in listed[0] and "no mask" in listed[0]
    assert "s3.png" in listed[1] and "class index 7" in listed[1]


SAMPLE = [{"random_resized_crop": {"scale": [0.3, 1.0]}}, "hflip", "colour_jitter"]


def test_per_image_augmentation_is_the_same_with_any_worker_count(images):
    keys = {"cache": "stream", "sample_augment": SAMPLE, "normalize": False}
    loaded = [load_data(data(images, workers=w, **keys), (1, 8, 8)) for w in (0, 2)]
    order = torch.randperm(len(loaded[0].train), generator=torch.Generator().manual_seed(1))
    one, two, other, plain = (
        torch.cat([x for x, _ in d.train.batches(order, 10, epoch)])
        for d, epoch in ((loaded[0], 3), (loaded[1], 3), (loaded[0], 4), (loaded[0], None))
    )
    assert torch.equal(one, two)  # drawn per (data.seed, epoch, image), not per worker
    assert not torch.equal(one, other) and not torch.equal(one, plain)  # another epoch, none
    x, _ = all_batches(loaded[0].val)  # evaluation is never augmented
    assert torch.equal(x, all_batches(load_data(data(images, cache="stream", normalize=False),
                                                (1, 8, 8)).val)[0])  # fmt: skip


@pytest.mark.parametrize(
    "keys, says",
    [
        ({"cache": "memory"}, "it needs data.cache: stream"),
        ({"cache": "auto"}, "it needs data.cache: stream"),
        ({"cache": "stream", "sample_augment": ["colour_jiter"]}, "did you mean 'colour_jitter'"),
        (
            {"cache": "stream", "sample_augment": [{"colour_jitter": {"contrast": 2}}]},
            "data.sample_augment[0].colour_jitter.contrast",
        ),
    ],
)
def test_per_image_augmentation_keys_are_checked(images, keys, says):
    from cnnkit.errors import RecipeError

    with pytest.raises(RecipeError, match=re.escape(says)):
        parse_data({"name": "folder", "path": str(images), "sample_augment": SAMPLE, **keys},
                   NoLocation())  # fmt: skip


def test_per_image_flips_move_each_mask_with_its_image(tmp_path):
    """Files at the stored size, every image flipped (p = 1): the streamed train batches are
    the in-memory ones mirrored, images and masks alike, bit for bit."""
    from tests.test_segment import write_pairs

    root = write_pairs(tmp_path / "pairs", n=10, size=(12, 10))
    keys = {"name": "folder", "path": str(root), "task": "segment", "classes": 3, "workers": 0}
    stats = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    memory = load_data(parse_data({**keys, "cache": "memory"}, NoLocation()), (3, 10, 12), stats)
    flips = {"cache": "stream", "sample_augment": [{"hflip": {"p": 1.0}}]}
    stream = load_data(parse_data({**keys, **flips}, NoLocation()), (3, 10, 12), stats)
    order = torch.arange(len(stream.train))
    (x, y), = stream.train.batches(order, len(order), epoch=2)  # fmt: skip
    assert torch.equal(x, memory.train.x.flip(-1)) and torch.equal(y, memory.train.y.flip(-1))
    assert (y == -100).any()  # ignored pixels stay ignored


def test_moving_a_split_keeps_its_workers_instead_of_starting_more(images):
    """The statistics pass starts the train loader's 2 workers; the split moved to its device
    (as ``fit`` moves it) reuses them: 2 worker processes, not 2 idle ones plus 2 more."""
    import gc
    import multiprocessing

    gc.collect()
    before = len(multiprocessing.active_children())
    bundle = load_data(data(images, cache="stream", workers=2), (1, 8, 8))
    moved = bundle.to("cpu").channels_last()
    order = torch.arange(len(moved.train))
    assert sum(len(y) for _, y in moved.train.batches(order, 16)) == len(order)
    gc.collect()
    assert len(multiprocessing.active_children()) - before == 2
