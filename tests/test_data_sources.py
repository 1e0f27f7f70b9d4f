"""Every data source reads small generated files; every bad-data class is one clear DataError."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from cnnkit.errors import DataError, MissingDependencyError
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from cnnkit.train.data.sources import read_idx_file

RNG = np.random.default_rng(0)


def config(**raw):
    return parse_data(raw, NoLocation("test"))


def images(n=30, h=8, w=8, c=None):
    shape = (n, h, w) if c is None else (n, c, h, w)
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def write_idx(path, array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(">u1").tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)


def test_digits_resized_split_and_normalised():
    data = load_data(config(name="digits"), (1, 32, 32))
    assert data.train.x.shape[1:] == (1, 32, 32)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert len(data.test) == round(1797 * 0.2) and data.classes == tuple("0123456789")
    assert abs(data.train.x.mean().item()) < 1e-4 and abs(data.train.x.std().item() - 1) < 1e-3


def test_split_is_seeded_and_independent_of_training():
    a = load_data(config(name="digits", seed=3), (1, 8, 8))
    b = load_data(config(name="digits", seed=3), (1, 8, 8))
    c = load_data(config(name="digits", seed=4), (1, 8, 8))
    assert torch.equal(a.test.y, b.test.y) and not torch.equal(a.test.y, c.test.y)


def test_npz_with_uint8_images(tmp_path):
    x, y = images(40), RNG.integers(0, 3, 40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_data(config(name="npz", path=str(tmp_path / "d.npz"), normalize=False), (1, 8, 8))
    assert data.classes == ("0", "1", "2")
    assert data.train.x.max() <= 1.0 and data.outputs == 3


def test_npz_given_splits(tmp_path):
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", x=images(20), y=RNG.integers(0, 2, 20))
    paths = {"train": str(tmp_path / "train.npz"), "test": str(tmp_path / "test.npz")}
    data = load_data(config(name="npz", path=paths, val=0.25), (1, 8, 8))
    assert (len(data.train), len(data.val), len(data.test)) == (15, 5, 20)


def test_csv_pixel_table_mnist_layout(tmp_path):
    import pandas as pd

    x = images(12, 4, 4).reshape(12, -1)
    table = pd.DataFrame(x, columns=[f"pixel{i}" for i in range(16)])
    table.insert(0, "label", RNG.integers(0, 10, 12))
    table.to_csv(tmp_path / "m.csv", index=False)
    data = load_data(config(name="csv", path=str(tmp_path / "m.csv"), val=0, test=0), (1, 4, 4))
    assert data.train.x.shape == (12, 1, 4, 4)


def test_folder_and_csv_path_table(tmp_path):
    from PIL import Image

    rows = []
    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(5):
            file = tmp_path / "imgs" / label / f"{i}.png"
            Image.fromarray(images(1, 10, 12, 3)[0].transpose(1, 2, 0)).save(file)
            rows.append(f"imgs/{label}/{i}.png,{label}")
    folder = load_data(config(name="folder", path=str(tmp_path / "imgs"), val=0), (3, 8, 8))
    assert folder.classes == ("cat", "dog") and folder.train.x.shape[1:] == (3, 8, 8)
    (tmp_path / "t.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    table = load_data(config(name="csv", path=str(tmp_path / "t.csv"), val=0, test=0), (1, 8, 8))
    assert table.classes == ("cat", "dog") and table.train.x.shape == (10, 1, 8, 8)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_folder_raw_and_gz(tmp_path, suffix):
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images(20, 6, 6))
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", RNG.integers(0, 10, 20))
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images(7, 6, 6))
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", RNG.integers(0, 10, 7))
    data = load_data(config(name="idx", path=str(tmp_path), val=0.1), (1, 6, 6))
    assert (len(data.train), len(data.val), len(data.test)) == (18, 2, 7)
    assert read_idx_file(tmp_path / f"t10k-images-idx3-ubyte{suffix}").shape == (7, 6, 6)


def test_regression_from_csv_and_synthetic(tmp_path):
    import pandas as pd

    table = pd.DataFrame(images(10, 2, 2).reshape(10, -1), columns=list("abcd"))
    table["t1"], table["t2"] = RNG.random(10), RNG.random(10)
    table.to_csv(tmp_path / "r.csv", index=False)
    cfg = config(name="csv", path=str(tmp_path / "r.csv"), task="regress", targets=["t1", "t2"])
    data = load_data(cfg, (1, 2, 2))
    assert data.task == "regress" and data.outputs == 2 and data.classes == ()
    synth = load_data(config(name="synthetic", task="regress", samples=20), (3, 4, 4))
    assert synth.outputs == 3


@pytest.mark.parametrize(
    ("setup", "raw", "shape", "message"),
    [
        (None, {"name": "npz", "path": "nope.npz"}, (1, 8, 8), "nope.npz: no such file"),
        ("bad_image", {"name": "folder"}, (1, 8, 8), "cannot read image"),
        ("csv_no_label", {"name": "csv"}, (1, 2, 2), "column 'label' is absent"),
        (
            "npz_28",
            {"name": "npz"},
            (1, 32, 32),
            "images are 28x28 but the recipe's input is 32x32",
        ),
        (
            "npz_rgb",
            {"name": "npz"},
            (1, 4, 4),
            "images have 3 channels but the recipe's input has 1",
        ),
        ("npz_no_y", {"name": "npz"}, (1, 4, 4), "array 'y' is absent"),
        ("idx_bad", {"name": "idx"}, (1, 4, 4), "not an IDX file"),
        ("csv_pixels", {"name": "csv"}, (1, 4, 4), "pixel columns do not make"),
        ("empty_folder", {"name": "folder"}, (1, 4, 4), "no class sub-folders"),
    ],
)
def test_bad_data_names_the_file_and_problem(tmp_path, setup, raw, shape, message):
    path = tmp_path / "data"
    if setup == "bad_image":
        (path / "a").mkdir(parents=True)
        (path / "a" / "broken.png").write_bytes(b"not a png")
    elif setup == "csv_no_label":
        path.write_text("digit,p0,p1,p2,p3\n1,0,0,0,0\n")
    elif setup == "npz_28":
        np.savez(path.with_suffix(".npz"), x=images(5, 28, 28), y=np.zeros(5, int))
    elif setup == "npz_rgb":
        np.savez(path.with_suffix(".npz"), x=images(5, 4, 4, c=3), y=np.zeros(5, int))
    elif setup == "npz_no_y":
        np.savez(path.with_suffix(".npz"), x=images(5, 4, 4))
    elif setup == "idx_bad":
        path.mkdir()
        (path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
        (path / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    elif setup == "csv_pixels":
        path.write_text("label,p0,p1,p2\n1,0,0,0\n")
    elif setup == "empty_folder":
        path.mkdir()
    if setup and setup.startswith("npz"):
        path = path.with_suffix(".npz")
    if "path" not in raw:
        raw = {**raw, "path": str(path)}
    with pytest.raises(DataError) as err:
        load_data(config(**raw), shape)
    assert message in str(err.value)
    if setup is not None:
        assert str(tmp_path) in str(err.value)


def test_torchvision_source_needs_torchvision():
    pytest.importorskip("torch")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"pip install 'cnnkit\[vision\]'"):
            load_data(config(name="torchvision:MNIST", path="."), (1, 28, 28))
    else:
        pytest.skip("torchvision is installed")


# ---- given splits share the train split's class vocabulary ----


def _folder(root, counts):
    """One sub-folder per class name with ``counts[name]`` grey PNGs."""
    from PIL import Image

    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(images(1, 8, 8)[0]).save(root / name / f"{i}.png")
    return str(root)


def _names(split, classes):
    from collections import Counter

    return Counter(classes[i] for i in split.y.tolist())


def test_a_test_folder_lacking_a_class_keeps_the_train_labels(tmp_path):
    from collections import Counter

    paths = {
        "train": _folder(tmp_path / "train", {"a": 4, "b": 4, "c": 4}),
        "test": _folder(tmp_path / "test", {"b": 3, "c": 5}),  # no 'a': 'b' must stay 1
    }
    data = load_data(config(name="folder", path=paths, val=0), (1, 8, 8))
    assert data.classes == ("a", "b", "c")
    assert _names(data.test, data.classes) == Counter({"b": 3, "c": 5})


@pytest.mark.parametrize("kind", ["csv", "npz"])
def test_string_labels_of_a_given_split_use_the_train_vocabulary(tmp_path, kind):
    from collections import Counter

    import pandas as pd

    labels = {"train": ["cat", "dog", "eel"] * 4, "test": ["eel", "dog", "eel", "eel"]}
    paths = {}
    for split, names in labels.items():
        x = images(len(names), 2, 2)
        if kind == "npz":
            np.savez(tmp_path / f"{split}.npz", x=x, y=np.array(names))
        else:
            table = pd.DataFrame(x.reshape(len(names), -1), columns=list("abcd"))
            table.insert(0, "label", names)
            table.to_csv(tmp_path / f"{split}.csv", index=False)
        paths[split] = str(tmp_path / f"{split}.{kind}")
    data = load_data(config(name=kind, path=paths, val=0), (1, 2, 2))
    assert data.classes == ("cat", "dog", "eel")
    assert _names(data.test, data.classes) == Counter(labels["test"])


def test_a_class_seen_only_outside_train_is_one_error(tmp_path):
    paths = {
        "train": _folder(tmp_path / "train", {"a": 3, "b": 3}),
        "val": _folder(tmp_path / "val", {"b": 2, "zebra": 2}),
    }
    with pytest.raises(DataError) as err:
        load_data(config(name="folder", path=paths), (1, 8, 8))
    message = str(err.value)
    assert message.startswith(paths["val"]) and "zebra" in message and "\n" not in message
    ints = {"train": tmp_path / "tr.npz", "test": tmp_path / "te.npz"}
    np.savez(ints["train"], x=images(6), y=np.array([0, 1, 2] * 2))
    np.savez(ints["test"], x=images(2), y=np.array([1, 7]))  # 7: no such train class
    with pytest.raises(DataError, match="the test split has classes the train split lacks: 7"):
        load_data(config(name="npz", path={k: str(v) for k, v in ints.items()}), (1, 8, 8))


# ---- data.limit and data.stratify keep the class proportions ----


def _sorted_npz(tmp_path, counts):
    """Class-sorted labels; image i is the constant i/255, so every row is identifiable."""
    y = np.repeat(np.arange(len(counts)), counts)
    x = np.broadcast_to(np.arange(len(y), dtype=np.uint8)[:, None, None], (len(y), 4, 4))
    np.savez(tmp_path / "sorted.npz", x=x.copy(), y=y)
    return str(tmp_path / "sorted.npz"), y


@pytest.mark.parametrize("limit", [30, 25, 7])
def test_limit_is_a_stratified_sample_of_real_rows(tmp_path, limit):
    path, y = _sorted_npz(tmp_path, [30, 20, 10])
    cfg = config(name="npz", path=path, limit=limit, val=0, test=0, normalize=False)
    data = load_data(cfg, (1, 4, 4))
    rows = (data.train.x[:, 0, 0, 0] * 255).round().long().numpy()
    assert len(set(rows.tolist())) == limit  # distinct rows of the file
    assert np.array_equal(data.train.y.numpy(), y[rows])  # each with its own label
    expected = np.bincount(y) * limit / len(y)
    got = np.bincount(data.train.y.numpy(), minlength=3)
    assert np.all(np.abs(got - expected) < 1), (got, expected)
    other = load_data(config(name="npz", path=path, limit=limit, val=0, test=0, seed=1), (1, 4, 4))
    assert not torch.equal(other.train.x, data.train.x)  # the sample follows data.seed


def test_limit_on_regression_targets_samples_across_the_file(tmp_path):
    x = np.broadcast_to(np.arange(100, dtype=np.uint8)[:, None, None], (100, 4, 4)).copy()
    np.savez(tmp_path / "r.npz", x=x, y=np.arange(100, dtype=np.float32))
    cfg = config(name="npz", path=str(tmp_path / "r.npz"), task="regress", limit=20, val=0, test=0)
    data = load_data(cfg, (1, 4, 4))
    assert len(data.train) == 20 and data.train.y.max() >= 50  # not the first 20 rows


def test_stratified_split_keeps_each_class_share():
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)
    data = load_data(config(name="digits", stratify=True, val=0.1, test=0.2), (1, 8, 8))
    for split, share in ((data.test, 0.2), (data.val, 0.1)):
        got = np.bincount(split.y.numpy(), minlength=10)
        assert np.all(np.abs(got - counts * share) < 1), (got, counts * share)
        assert len(split) == round(len(load_digits().target) * share)
    total = sum(np.bincount(s.y.numpy(), minlength=10) for s in (data.train, data.val, data.test))
    assert np.array_equal(total, counts)


def test_stratify_needs_class_labels():
    from cnnkit.errors import RecipeError

    with pytest.raises(RecipeError, match="data.stratify: a stratified split needs class labels"):
        config(name="synthetic", task="regress", stratify=True)
