"""data:/train: validation: defaults, every checker, and errors in the house format."""

from __future__ import annotations

import re

import pytest

from cnnkit.errors import RecipeError
from cnnkit.train.config import (
    AUGMENTS,
    DataConfig,
    NoLocation,
    TrainConfig,
    parse_data,
    parse_train,
    to_plain,
)
from cnnkit.train.plan import load_with_overrides, sections
from tests.trainkit import tiny_recipe


def test_defaults_when_sections_are_absent(tmp_path):
    recipe = load_with_overrides(tiny_recipe(tmp_path, extra=""))
    assert sections(recipe) == (DataConfig(), TrainConfig())


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ("train:\n  lr: a\n", ":11: train.lr", "expected a positive number, got 'a'"),
        ("train:\n  epochs: 0\n", ":11: train.epochs", "expected a positive integer, got 0"),
        ("train:\n  optimiser: sgd\n", ":11: train.optimiser", "did you mean 'optimizer'"),
        ("train:\n  optimizer: sdg\n", ":11: train.optimizer", "did you mean 'sgd'"),
        ("train:\n  betas: [0.9]\n", ":11: train.betas", "two numbers"),
        ("data:\n  name: foo\n", ":11: data.name", "expected one of digits"),
        ("data:\n  name: npz\n", ":11: data.name", "needs data.path"),
        ("data:\n  val: 0.6\n  test: 0.5\n", ":12: data.test", "must leave some train data"),
        ("data:\n  augment: [flip]\n", ":11: data.augment[0]", "did you mean 'hflip'"),
        (
            "data:\n  augment:\n    - random_crop: {padding: -1}\n",
            ":12: data.augment[0].random_crop.padding",
            "non-negative integer",
        ),
        ("data:\n  resize: [1, 2, 3]\n", ":11: data.resize", "a size like 32"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path, body, where, message):
    path = tiny_recipe(tmp_path, extra=body)
    with pytest.raises(RecipeError) as err:
        sections(load_with_overrides(path))
    assert str(err.value).startswith(f"{path}{where}: "), str(err.value)
    assert message in str(err.value)


def test_set_creates_missing_sections_and_names_itself_in_errors(tmp_path):
    path = tiny_recipe(tmp_path, extra="")
    data, train = sections(load_with_overrides(path, ["train.lr=0.5", "data.name=synthetic"]))
    assert (train.lr, data.name) == (0.5, "synthetic")
    with pytest.raises(RecipeError, match=r"^--set train.lr=x: train.lr: expected a positive"):
        sections(load_with_overrides(path, ["train.lr=x"]))


def test_to_plain_round_trips():
    data = parse_data(
        {"name": "digits", "augment": ["hflip", {"random_crop": {"padding": 2}}], "resize": 36},
        NoLocation(),
    )
    assert parse_data(to_plain(data), NoLocation()) == data
    train = parse_train({"betas": [0.8, 0.9], "clip_grad_norm": 1}, NoLocation())
    assert parse_train(to_plain(train), NoLocation()) == train


def test_yaml_1_1_scientific_notation_is_a_number(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string; a learning rate written that way must still work
    path = tiny_recipe(tmp_path, extra="train:\n  lr: 1e-4\n  weight_decay: 5e-4\n")
    _, train = sections(load_with_overrides(path))
    assert (train.lr, train.weight_decay) == (1e-4, 5e-4)


@pytest.mark.parametrize("kind", AUGMENTS)
def test_every_augmentation_default_survives_its_own_check(kind):
    # a run folder's recipe.yaml writes the defaults out; reading it back must not fail
    data = parse_data({"augment": [kind]}, NoLocation())
    assert parse_data(to_plain(data), NoLocation()) == data


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ({"random_resized_crop": {"scale": [0.5, 1.5]}}, "0 < low <= high <= 1"),
        ({"random_resized_crop": {"scale": [0, 0.5]}}, "0 < low <= high <= 1"),
        ({"random_resized_crop": {"scale": [0.9, 0.5]}}, "0 < low <= high <= 1"),
        ({"hflip": {"p": 1.5}}, "a probability in [0, 1]"),
    ],
)
def test_augment_ranges_are_checked(augment, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        parse_data({"augment": [augment]}, NoLocation())
    assert parse_data({"augment": [{"hflip": {"p": 1}}]}, NoLocation()).augment[0].args["p"] == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resize", [100000, 100000], "a size of at most 8192 per side"),
        ("resize", 8193, "a size of at most 8192 per side"),
        ("classes", 10**20, "a positive integer up to 100,000"),
        ("samples", 2**31, "a positive integer up to 100,000,000"),
    ],
)
def test_data_sizes_past_any_real_set_are_refused_by_key(field, value, message):
    """Each of these reached torch as an overflow or an allocator message (the fuzz suite)."""
    with pytest.raises(RecipeError, match=re.escape(message)):
        parse_data({field: value}, NoLocation())
    assert parse_data({field: 8192 if field == "resize" else 100_000}, NoLocation())


def test_a_synthetic_set_memory_cannot_hold_is_named_before_torch_is_asked(tmp_path):
    from tests.clitools import run_cli

    body = "data: {name: synthetic, samples: 100000000, resize: 8192}\n"  # 24 PiB
    r = run_cli("train", str(tiny_recipe(tmp_path, extra=body)), "--out", str(tmp_path / "r"))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert "data.samples" in r.err and "GiB" in r.err
    assert not (tmp_path / "r" / "last.pt").exists()
