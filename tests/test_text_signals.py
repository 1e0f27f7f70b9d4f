"""Text (a CSV of text,label; the generated sentiment set) and 1-D signals (npz, CSV, waves):
tokenizer and vocabulary, training textcnn and a conv1d recipe, eval on new data, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.errors import DataError, RecipeError
from cnnkit.train.config import NoLocation, parse_data
from cnnkit.train.data import load_data
from cnnkit.train.data.text import build_vocab, encode, tokenize
from tests.clitools import run_cli
from tests.trainkit import summary

# recipes/textcnn.yaml made quick: a small embedding (its 20,000 rows hold the vocabulary
# as they are), 50 maps per width, 1,000 sentences, 3 epochs.
FAST_TEXTCNN = (
    "--set", "model.layers[0].embedding.dim=64",
    "--set", "model.blocks.ngram.layers[0].conv.out=50",
    "--set", "data.samples=1000", "--set", "train.epochs=3",
    "--set", "train.device=cpu", "--set", "train.lr=0.003",
)  # fmt: skip


def _docs_signal_recipe() -> str:
    """The 1-D recipe of docs/reference/config.md ("Text and 1-D signals"), as printed."""
    text = (Path(__file__).parent.parent / "docs/reference/config.md").read_text(encoding="utf-8")
    section = text[text.index("### Text and 1-D signals") :]
    return section[
        section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))
    ]


TEXT_RECIPE = """\
input: [12]
model:
  layers:
    - {embedding: {vocab: 50, dim: 8, padding_idx: 0}, name: embedding}
    - {conv: {out: 8, k: 3}, name: conv}
    - relu
    - global_maxpool
    - {linear: 2, name: fc}
train: {epochs: 1, device: cpu}
"""


def _data(**keys):
    return parse_data(keys, NoLocation())


def _text_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_tokenizer_lower_cases_and_keeps_inner_apostrophes():
    config = _data(name="sentiment")
    assert tokenize("Don't STOP, it's great!! 3 stars", config) == [
        "don't", "stop", "it's", "great", "3", "stars",
    ]  # fmt: skip
    kept = _data(name="sentiment", lowercase=False, token_pattern=r"[A-Za-z]+|[!?]")
    assert tokenize("Great film!", kept) == ["Great", "film", "!"]


def _oracle_vocab(sentences, min_freq, cap):
    """By hand: count, drop rare, order by (-count, word), put <pad>, <unk> first, cap."""
    counts: dict[str, int] = {}
    for words in sentences:
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    kept = [w for w in counts if counts[w] >= min_freq]
    kept.sort(key=lambda w: (-counts[w], w))
    return (["<pad>", "<unk>"] + kept)[: cap or None]


@pytest.mark.parametrize(("min_freq", "cap"), [(1, None), (2, None), (1, 5), (3, 4)])
def test_vocabulary_order_min_freq_and_cap_against_a_hand_count(min_freq, cap):
    rng = np.random.default_rng(min_freq * 10 + (cap or 0))
    words = [f"w{i}" for i in range(12)]
    sentences = [list(rng.choice(words, rng.integers(1, 9))) for _ in range(40)]
    config = _data(name="sentiment", min_freq=min_freq)
    assert build_vocab(sentences, config, cap) == _oracle_vocab(sentences, min_freq, cap)


def test_encode_truncates_pads_with_zero_and_maps_unknown_words_to_one():
    vocab = ["<pad>", "<unk>", "good", "film"]
    ids = encode([["good", "film", "zzz"], ["film"] * 7], vocab, 5)
    assert ids.dtype == torch.int64
    assert ids.tolist() == [[2, 3, 1, 0, 0], [3, 3, 3, 3, 3]]


def test_the_vocabulary_comes_from_the_train_split_only(tmp_path):
    train = _text_csv(tmp_path / "train.csv", [("good film", "pos"), ("bad film", "neg")] * 5)
    test = _text_csv(tmp_path / "test.csv", [("good unseen film", "pos"), ("bad", "neg")])
    config = _data(name="text", path={"train": str(train), "test": str(test)}, val=0.0)
    data = load_data(config, (4,))
    assert data.vocab == ("<pad>", "<unk>", "film", "bad", "good")
    assert data.test.x.tolist() == [[4, 1, 2, 0], [3, 0, 0, 0]]  # "unseen": <unk>
    assert data.classes == ("neg", "pos") and data.test.y.tolist() == [1, 0]


def test_sentiment_is_seeded_and_balanced_enough():
    a = load_data(_data(name="sentiment", samples=300), (20,), embedding=1000)
    b = load_data(_data(name="sentiment", samples=300), (20,), embedding=1000)
    c = load_data(_data(name="sentiment", samples=300, seed=1), (20,), embedding=1000)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    share = a.train.y.double().mean().item()
    assert 0.35 < share < 0.65 and a.classes == ("negative", "positive")


@pytest.fixture(scope="module")
def textcnn_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("textcnn") / "run"
    r = run_cli("train", "recipes/textcnn.yaml", *FAST_TEXTCNN, "--out", str(run))
    assert r.code == 0, r.err
    return run


def test_textcnn_trains_on_sentiment_to_90_percent(textcnn_run):
    document = summary(textcnn_run)
    assert document["data"]["source"] == "sentiment" and document["status"] == "completed"
    assert document["test"]["accuracy"] >= 0.9, document["test"]["accuracy"]


def test_the_run_keeps_its_vocabulary_and_eval_encodes_new_text_with_it(textcnn_run, tmp_path):
    vocab = json.loads((textcnn_run / "vocab.json").read_text(encoding="utf-8"))
    checkpoint = torch.load(textcnn_run / "best.pt", weights_only=True)
    assert checkpoint["vocab"] == vocab and vocab[:2] == ["<pad>", "<unk>"]
    assert not list(textcnn_run.glob("*.tmp*"))
    new = _text_csv(
        tmp_path / "new.csv",
        [
            ("The film was wonderful, brilliant and funny!", "positive"),
            ("this movie was awful and boring", "negative"),
            ("THE PLOT WAS DULL, FLAT AND TEDIOUS", "negative"),
            ("the cast was superb; a charming, clever story", "positive"),
        ],
    )
    r = run_cli("eval", str(textcnn_run), "--data", f"text:{new}", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["samples"] == 4 and report["accuracy"] == 1.0
    r = run_cli("eval", str(textcnn_run), "--json")  # its own test split, same ids as training
    assert r.code == 0 and json.loads(r.out)["accuracy"] == summary(textcnn_run)["test"]["accuracy"]


def test_text_csv_trains_and_resumes_to_the_same_data(tmp_path):
    rows = [(f"good film {i}", "pos") for i in range(30)] + [
        (f"bad film {i}", "neg") for i in range(30)
    ]
    data = _text_csv(tmp_path / "d.csv", rows)
    recipe = tmp_path / "t.yaml"
    recipe.write_text(TEXT_RECIPE, encoding="utf-8")
    run = tmp_path / "run"
    sets = ("--set", "data.name=text", "--set", f"data.path={data}")
    r = run_cli("train", str(recipe), *sets, "--out", str(run))
    assert r.code == 0, r.err
    assert len(json.loads((run / "vocab.json").read_text())) <= 50
    r = run_cli("train", "--resume", str(run))
    assert r.code == 0, r.err  # same fingerprint: the vocabulary is rebuilt identically


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("good", "pos"), ("!!!", "neg"), ("...", "neg")], "2 rows have no words"),
        ([("good", "pos"), ("bad", "")], "1 row has empty label"),
    ],
)
def test_bad_text_rows_fail_before_training_with_one_line(tmp_path, rows, message):
    data = _text_csv(tmp_path / "d.csv", rows)
    with pytest.raises(DataError) as err:
        load_data(_data(name="text", path=str(data)), (8,))
    assert f"{message} (first: data row 2)" in str(err.value)
    assert "\n" not in str(err.value)
    assert str(data) in str(err.value)


def test_an_unknown_label_in_a_given_split_and_a_missing_column_are_one_line(tmp_path):
    train = _text_csv(tmp_path / "train.csv", [("good", "pos"), ("bad", "neg")] * 3)
    test = _text_csv(tmp_path / "test.csv", [("meh", "neutral")])
    with pytest.raises(DataError, match="classes the train split lacks: neutral"):
        load_data(_data(name="text", path={"train": str(train), "test": str(test)}), (8,))
    huge = _text_csv(tmp_path / "h.csv", [("hi", "1"), ("bye", "9" * 30)])
    with pytest.raises(DataError, match="at data row 2 is not a class index below 100,000"):
        load_data(_data(name="text", path=str(huge)), (8,))
    with pytest.raises(DataError, match="at most 1,000,000 sentences"):
        load_data(_data(name="sentiment", samples=2_000_000), (8,))
    other = tmp_path / "o.csv"
    other.write_text("sentence,label\nhi,pos\n", encoding="utf-8")
    with pytest.raises(DataError, match="column 'text' is absent"):
        load_data(_data(name="text", path=str(other)), (8,))


def test_vocabulary_and_recipe_mismatches_are_refused(tmp_path):
    recipe = tmp_path / "t.yaml"
    recipe.write_text(TEXT_RECIPE, encoding="utf-8")
    r = run_cli("train", str(recipe), "--set", "data.name=sentiment", "--set", "data.vocab_size=80")
    assert r.code == 2 and "data.vocab_size 80 is more than the 50 ids" in r.err
    bad_pad = TEXT_RECIPE.replace("padding_idx: 0", "padding_idx: 3")
    recipe.write_text(bad_pad, encoding="utf-8")
    r = run_cli("train", str(recipe), "--set", "data.name=sentiment")
    assert r.code == 2 and "padding_idx 3; set padding_idx: 0" in r.err
    with pytest.raises(DataError, match=re.escape("needs a recipe input [L]")):
        load_data(_data(name="sentiment"), (1, 8, 8))
    with pytest.raises(RecipeError, match="data.token_pattern: expected a regular expression"):
        parse_data({"token_pattern": "a*"}, NoLocation())  # matches the empty string
    with pytest.raises(RecipeError, match="data.token_pattern"):
        parse_data({"token_pattern": "("}, NoLocation())


def test_waves_train_a_conv1d_recipe_to_90_percent(tmp_path):
    recipe = tmp_path / "waves.yaml"
    recipe.write_text(_docs_signal_recipe(), encoding="utf-8")
    run = tmp_path / "run"
    r = run_cli("train", str(recipe), "--out", str(run))
    assert r.code == 0, r.err
    document = summary(run)
    assert document["data"]["classes"] == 3
    assert document["test"]["accuracy"] >= 0.9, document["test"]["accuracy"]
    r = run_cli("eval", str(run), "--json")
    assert r.code == 0 and json.loads(r.out)["accuracy"] == document["test"]["accuracy"]


def _waves(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    data = load_data(_data(name="waves", samples=n, normalize=False, val=0.0, test=0.0), (2, 64))
    return data.train.x.numpy(), data.train.y.numpy()


def test_npz_and_csv_signals_read_the_same_values(tmp_path):
    x, y = _waves()
    np.savez(tmp_path / "s.npz", x=x, y=y)
    header = "label," + ",".join(f"c{c}_{t}" for c in range(2) for t in range(64))
    rows = [
        f"{label}," + ",".join(repr(float(v)) for v in sig.reshape(-1)) for sig, label in zip(x, y)
    ]
    (tmp_path / "s.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    keys = {"normalize": False, "val": 0.0, "test": 0.0}
    a = load_data(_data(name="npz", path=str(tmp_path / "s.npz"), **keys), (2, 64))
    b = load_data(_data(name="csv", path=str(tmp_path / "s.csv"), **keys), (2, 64))
    assert torch.equal(b.train.x, a.train.x) and torch.equal(a.train.y, b.train.y)
    first = a.train.x[:, 0, 0]  # the split shuffles: the same rows, in the seeded order
    assert torch.equal(torch.sort(first).values, torch.sort(torch.from_numpy(x[:, 0, 0])).values)
    assert a.train.x.shape == (60, 2, 64) and a.classes == ("0", "1", "2")
    np.savez(tmp_path / "one.npz", x=x[:, 0], y=y)  # [N, L]: one channel
    single = load_data(_data(name="npz", path=str(tmp_path / "one.npz"), **keys), (1, 64))
    assert torch.equal(single.train.x[:, 0], a.train.x[:, 0])
    normed = load_data(_data(name="npz", path=str(tmp_path / "s.npz"), val=0.0, test=0.0), (2, 64))
    raw = a.train.x.numpy()
    expect = (raw - x.mean(axis=(0, 2), keepdims=True)) / x.std(axis=(0, 2), ddof=1, keepdims=True)
    assert np.allclose(normed.train.x.numpy(), expect, atol=1e-5)  # per channel


def test_bad_signal_files_are_one_line(tmp_path):
    x, y = _waves(10)
    np.savez(tmp_path / "short.npz", x=x[:, :, :50], y=y)
    with pytest.raises(DataError, match=re.escape("length 50 but the recipe's input is [2, 64]")):
        load_data(_data(name="npz", path=str(tmp_path / "short.npz")), (2, 64))
    header = "label," + ",".join(f"v{i}" for i in range(4))
    (tmp_path / "ragged.csv").write_text(f"{header}\n0,1,2,3,4\n1,1,2\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_data(_data(name="csv", path=str(tmp_path / "ragged.csv")), (2, 2))
    assert "1 row has missing, NaN or inf values, or too few (first: data row 2)" in str(err.value)
    with pytest.raises(
        DataError, match=re.escape("4 value columns, but the recipe's input [1, 8]")
    ):
        load_data(_data(name="csv", path=str(tmp_path / "ragged.csv")), (1, 8))
    with pytest.raises(DataError, match="1-D signals from npz, csv or waves, not 'digits'"):
        load_data(_data(name="digits"), (1, 64))
    with pytest.raises(DataError, match=re.escape("need a recipe input [C, L]")):
        load_data(_data(name="waves"), (1, 8, 8))
