"""Text sources: sentences to padded token-id sequences for an embedding recipe (input ``[L]``).

The tokenizer lower-cases (``data.lowercase``) and takes every match of ``data.token_pattern``
(``re.findall``; by default words with at most one inner apostrophe, punctuation dropped).
The vocabulary is built on the train split only, so a word seen only in test data is ``<unk>``
there as it would be in new text: id 0 is ``<pad>`` (the embedding's ``padding_idx``), 1 is
``<unk>``, then words by falling count in the train split (ties alphabetical), at least
``data.min_freq`` times, at most ``data.vocab_size`` ids in all (default: the embedding's
``vocab``). It is saved in the run (``vocab.json`` and every checkpoint): ``cnnkit eval``
encodes new text with the same ids. Sequences keep their first L tokens, padded with 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import DataError
from cnnkit.train.config import TEXT_SOURCES, DataConfig
from cnnkit.train.data import checks
from cnnkit.train.data.sources import Raw

PAD, UNK = "<pad>", "<unk>"
VOCAB_FILE = "vocab.json"  # in the run folder, beside recipe.yaml

# The generated ``sentiment`` set: a subject, cue words of the sentence's polarity (and, in
# some sentences, one of the other), and neutral filler; the label is the majority polarity.


def _listed(text: str) -> tuple[str, ...]:
    return tuple(text.split(","))


_SUBJECTS = _listed(
    "the film,this movie,the plot,the acting,the ending,the cast,the script,the music,"
    "the story,the director"
)
_POSITIVE = _listed(
    "good,great,wonderful,moving,brilliant,funny,charming,superb,delightful,gripping,beautiful,"
    "clever"
)
_NEGATIVE = _listed(
    "bad,awful,boring,dull,weak,tedious,clumsy,lifeless,terrible,flat,silly,predictable"
)
_FILLER = _listed(
    "really,quite,at times,overall,in the end,frankly,and,with,a,some,scenes,was,is,felt,"
    "seemed,very"
)
SENTIMENT_CLASSES = ("negative", "positive")
MAX_SENTENCES = 1_000_000  # generated in Python: a few seconds per 100,000


def tokenize(text: str, config: DataConfig) -> list[str]:
    """The words of one sentence, as the vocabulary and the model see them."""
    return re.findall(config.token_pattern, text.lower() if config.lowercase else text)


def build_vocab(sentences: Sequence[Sequence[str]], config: DataConfig, cap: int | None) -> list:
    """``<pad>``, ``<unk>``, then the train split's words by falling count (ties alphabetical),
    each seen ``min_freq`` times or more, ``cap`` ids in all (None: no limit)."""
    counts = Counter(word for words in sentences for word in words)
    ranked = sorted(
        (w for w, n in counts.items() if n >= config.min_freq and w not in (PAD, UNK)),
        key=lambda w: (-counts[w], w),
    )
    words = [PAD, UNK, *ranked]
    return words if cap is None else words[:cap]


def encode(sentences: Sequence[Sequence[str]], vocab: Sequence[str], length: int) -> torch.Tensor:
    """``[N, length]`` int64 ids: the first ``length`` tokens, unknown words 1, padded with 0."""
    index = {word: i for i, word in enumerate(vocab)}
    out = torch.zeros(len(sentences), length, dtype=torch.int64)
    for row, words in enumerate(sentences):
        ids = [index.get(w, 1) for w in words[:length]]
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out


def generate_sentiment(config: DataConfig) -> tuple[list[str], np.ndarray]:
    """``data.samples`` seeded sentences with labels 0 (negative) and 1 (positive)."""
    if config.samples > MAX_SENTENCES:
        raise DataError(
            f"the generated sentiment set is for tests and examples: at most "
            f"{MAX_SENTENCES:,} sentences, not {config.samples:,}",
            where="data.samples",
        )
    rng = np.random.default_rng(config.seed)
    texts, labels = [], rng.integers(0, 2, config.samples)
    for label in labels:
        own, other = (_POSITIVE, _NEGATIVE) if label else (_NEGATIVE, _POSITIVE)
        words = [str(rng.choice(_SUBJECTS)), "was"]
        words += [str(w) for w in rng.choice(own, 2)]
        if rng.random() < 0.3:
            words.append(str(rng.choice(other)))
        words += [str(w) for w in rng.choice(_FILLER, int(rng.integers(2, 8)))]
        order = [0, *(1 + rng.permutation(len(words) - 1))]
        texts.append(" ".join(words[i] for i in order))
    return texts, labels


def read_text_csv(config: DataConfig, path: str) -> tuple[list[str], np.ndarray]:
    """The ``text`` and label columns of a CSV (read as strings: a sentence "1999" stays one);
    labels that are all integers are class indices, anything else class names."""
    import pandas as pd

    from cnnkit.train.data.sources import _DECOMPRESSION_ERRORS, _existing, _one_line

    file = _existing(path)
    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, *_DECOMPRESSION_ERRORS) as err:
        raise DataError(f"cannot read CSV: {_one_line(err)}", where=path) from None
    for column in (config.text_column, config.label_column):
        if column not in table.columns:
            names = ", ".join(map(str, list(table.columns)[:8]))
            raise DataError(f"column {column!r} is absent (columns: {names})", where=path)
    if table.empty:
        raise DataError("the table has a header but no data rows", where=path)
    labels = table[config.label_column].str.strip()
    _no_empty(labels.to_numpy() == "", "empty label", path)
    numeric = labels.str.fullmatch(r"\d+").all()
    # As floats: a 30-digit "index" overflows int64; _labels refuses it past MAX_CLASSES.
    values = labels.to_numpy(dtype=np.float64) if numeric else labels.to_numpy(dtype=str)
    return list(table[config.text_column]), values


def _no_empty(flags: Any, what: str, where: str, note: str = "") -> None:
    """One line: how many rows are bad and the first one's data row (from 1, after the header;
    not a file line: pandas skips blank lines and a quoted cell may span lines)."""
    count, first = checks.count_true(np.asarray(flags, dtype=bool))
    if count:
        raise DataError(
            f"{count} row{'s have' if count > 1 else ' has'} {what} (first: "
            f"{checks.row_of(first)}){note}",
            where=where,
        )


def read_sentences(config: DataConfig, path: str | None) -> tuple[list[list[str]], Raw]:
    """Tokenized sentences, and a ``Raw`` whose ``x`` holds each one's index (so the
    pipeline's limit and split pick sentences), labels and class names."""
    from cnnkit.train.data.sources import _labels

    if config.name == "sentiment":
        texts, values = generate_sentiment(config)
        y, classes = torch.from_numpy(values.astype(np.int64)), SENTIMENT_CLASSES
    else:
        assert path is not None  # parse_data asks for data.path
        texts, values = read_text_csv(config, path)
        y, classes = _labels(values, path, checks.row_of)
    words = [tokenize(t, config) for t in texts]
    note = f"; words are matches of data.token_pattern {config.token_pattern!r}"
    _no_empty([not w for w in words], "no words", path or config.name, note)
    return words, Raw(torch.arange(len(words))[:, None], y, classes)


def write_vocab(run: Path, vocab: Sequence[str]) -> None:
    """The run's vocabulary as a JSON list of words (id = position), written atomically."""
    import json

    from cnnkit.atomic import write_text

    write_text(run / VOCAB_FILE, json.dumps(list(vocab), ensure_ascii=False) + "\n")


def _read_all(config: DataConfig) -> tuple[list[list[str]], Raw]:
    """Every split's sentences in one list; each ``Raw.x`` indexes into it."""
    paths = config.path if isinstance(config.path, dict) else {"train": config.path}
    words, raw = read_sentences(config, paths["train"])
    for split in ("val", "test"):
        if split in paths:
            more, given = read_sentences(config, paths[split])
            given.x += len(words)
            words += more
            raw.given[split] = given
    return words, raw


def load_text(
    config: DataConfig,
    input_shape: tuple[int, ...],
    vocab: Sequence[str] | None = None,
    embedding: int | None = None,
) -> Any:
    """A ``DataBundle`` of ``[N, L]`` token ids; ``vocab`` (evaluation) replaces the one built
    on the train split, ``embedding`` (the model's embedding rows) caps a built one."""
    from cnnkit.train.data.pipeline import DataBundle, Split, fingerprint, split_raw

    length = _sequence_length(config, input_shape)
    if config.vocab_size is not None and embedding is not None and config.vocab_size > embedding:
        raise DataError(
            f"data.vocab_size {config.vocab_size:,} is more than the {embedding:,} ids the "
            "recipe's embedding holds (its vocab); lower data.vocab_size or raise the vocab",
            where="data.vocab_size",
        )
    words, raw = _read_all(config)
    train, val, test = split_raw(raw, config)
    if vocab is None:
        vocab = build_vocab(
            [words[i] for i in train.x[:, 0].tolist()], config, config.vocab_size or embedding
        )

    def ids(split: Split | None) -> Split | None:
        if split is None:
            return None
        return Split(encode([words[i] for i in split.x[:, 0].tolist()], vocab, length), split.y)

    splits = {"train": ids(train), "val": ids(val), "test": ids(test)}
    encoded = splits["train"]
    assert encoded is not None
    return DataBundle(
        train=encoded,
        val=splits["val"],
        test=splits["test"],
        task=config.task,
        classes=raw.classes,
        mean=(),
        std=(),
        input_shape=tuple(input_shape),
        source=config.name if config.path is None else f"{config.name}:{config.path_text}",
        fingerprint=fingerprint(splits, (*raw.classes, "", *vocab)),
        vocab=tuple(vocab),
    )


def _sequence_length(config: DataConfig, input_shape: tuple[int, ...]) -> int:
    """L of a recipe input ``[L]``; text for any other input, augmentations, regression: refused."""
    if len(input_shape) != 1:
        raise DataError(
            f"text becomes token ids: it needs a recipe input [L] (an embedding first), the "
            f"recipe has {list(input_shape)}",
            where=config.name,
        )
    if config.augment:
        raise DataError(
            "image augmentations do not apply to text; remove data.augment", where=config.name
        )
    if config.task != "classify":
        raise DataError("text sources classify (task: classify)", where=config.name)
    return input_shape[0]


def embedding_rows(module: torch.nn.Module, config: DataConfig) -> int | None:
    """For a text source, the model's first embedding's ``vocab`` (the most ids the data may
    use), which must pad with id 0 as the vocabulary does; None for other sources."""
    if config.name not in TEXT_SOURCES:
        return None
    for layer in module.modules():
        if isinstance(layer, torch.nn.Embedding):
            if layer.padding_idx not in (None, 0):
                raise DataError(
                    f"the vocabulary pads with id 0 ({PAD}) but the embedding has padding_idx "
                    f"{layer.padding_idx}; set padding_idx: 0",
                    where=config.name,
                )
            return int(layer.num_embeddings)
    return None
