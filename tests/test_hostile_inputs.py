"""Regressions the fuzz suite (tests/fuzz) found: each input below gave a two-line error or an
internal error before, and is now one ``error:`` line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.errors import CheckpointError
from cnnkit.train.checkpoint import CHECKSUM, load_checkpoint, save_atomic
from tests.clitools import run_cli
from tests.test_checkpoints import GOOD as CHECKPOINT
from tests.trainkit import TINY_TRAIN, tiny_recipe


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("value", "shown"),
    [("\x07", "#x0007"), ("[1, \x1b]", "#x001b"), ("{a: \x00}", "#x0000")],
)
def test_a_control_character_in_a_set_value_is_one_line(value, shown):
    r = run_cli("params", "lenet", "--set", f"model.depth={value}")
    assert r.code == 2
    assert shown in _one_error_line(r.err) and "<unicode string>" not in r.err


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["params", "lenet", "--set", "train.lr=[1\n2"], "train.lr=[1\\n2"),
        (["params", "a\nb.yaml"], "a\\nb.yaml"),
        (["params", "x\x1b[31m.yaml"], "x\\x1b[31m.yaml"),
        (["conv", "--nope\r"], "--nope\\r"),
    ],
)
def test_control_characters_the_user_typed_are_escaped_in_the_error_line(args, shown):
    """A newline in a --set value or a path used to split the error over two lines; an
    escape sequence was sent to the terminal as it was."""
    r = run_cli(*args)
    assert r.code == 2
    assert shown in _one_error_line(r.err)


GOOD = {**CHECKPOINT, "name": "x", "input_shape": [1, 8, 8]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipe", [1, 2, 3]),
        ("epoch", "x"),
        ("epoch", -5),
        ("task", "nope"),
        ("classes", 3),
        ("mean", "x"),
        ("model", [torch.zeros(3)]),
        ("model", {"w": 3}),
        ("name", 5),
        ("input_shape", [1, 0, 8]),
    ],
)
def test_a_checkpoint_field_of_the_wrong_type_is_refused_by_name(tmp_path, field, value):
    """The checksum is valid (save_atomic computes it), so only the type check stops these;
    they raised AttributeError or TypeError far from the file before."""
    path = tmp_path / "x.pt"
    save_atomic({**GOOD, field: value}, path)
    with pytest.raises(CheckpointError, match=f"field '{field}' should be"):
        load_checkpoint(path)
    r = run_cli("eval", str(path))
    assert r.code == 2 and f"field '{field}'" in _one_error_line(r.err)


def test_a_good_checkpoint_still_loads(tmp_path):
    save_atomic(GOOD, tmp_path / "x.pt")
    assert load_checkpoint(tmp_path / "x.pt")["epoch"] == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    recipe = tiny_recipe(folder, TINY_TRAIN.replace("epochs: 3", "epochs: 1"))
    r = run_cli("train", str(recipe), "--out", str(folder / "run"))
    assert r.code == 0, r.err
    return folder / "run" / "best.pt"


def _edited(trained: Path, folder: Path, **fields) -> Path:
    """A copy of ``trained`` with ``fields`` replaced and a valid checksum."""
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint.pop(CHECKSUM)
    save_atomic({**checkpoint, **fields}, folder / "edited.pt")
    return folder / "edited.pt"


def test_eval_refuses_an_input_shape_its_recipe_does_not_have(trained, tmp_path):
    """It resized the data to 1e9 x 1e9: an internal 'Storage size calculation overflowed'."""
    path = _edited(trained, tmp_path, input_shape=[1, 10**9, 10**9])
    r = run_cli("eval", str(path))
    assert r.code == 2
    line = _one_error_line(r.err)
    assert "input_shape [1, 1000000000, 1000000000] differs from its recipe's input" in line


def test_weights_that_do_not_fit_say_which_keys(trained, tmp_path):
    """The message used to stop at torch's first line, 'Error(s) in loading state_dict for
    GraphModule:', and name no key."""
    path = _edited(trained, tmp_path, model={"c1.weight": torch.zeros(10)})
    r = run_cli("eval", str(path))
    assert r.code == 2
    line = _one_error_line(r.err)
    assert "weights do not fit its recipe's model: Missing key(s)" in line and "c1.bias" in line


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ("train.seed=100000000000000000000", "train.seed: expected a non-negative integer below"),
        ("data.seed=100000000000000000000", "data.seed: expected a non-negative integer below"),
        ("train.lr=" + "9" * 60, "train.lr: expected a positive number up to 1e+06"),
        ("train.weight_decay=" + "9" * 60, "train.weight_decay: expected a non-negative number"),
        ("train.warmup_epochs=.inf", "train.warmup_epochs: expected a non-negative number"),
    ],
)
def test_train_and_data_numbers_past_any_real_setting_are_refused(tmp_path, setting, shown):
    """Each trained until torch failed: 'Overflow when unpacking long long', 'value cannot be
    converted to type float without overflow', 'cannot convert float infinity to integer'."""
    recipe = tiny_recipe(tmp_path, TINY_TRAIN.replace("epochs: 3", "epochs: 1"))
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "run"), "--set", setting)
    assert r.code == 2
    assert shown in _one_error_line(r.err)


@pytest.mark.parametrize("batch", ["1000000000000000000000000000000", "4611686018427387904"])
def test_profile_refuses_a_batch_no_device_holds_before_asking_torch(tmp_path, batch):
    """--batch 1e30 was an internal TypeError ('Overflow when unpacking long long'), 2^62 an
    allocator message ('Storage size calculation overflowed')."""
    recipe = tiny_recipe(tmp_path)
    r = run_cli("profile", str(recipe), "--batch", batch, "--iters", "1", "--warmup", "0")
    assert r.code == 2
    line = _one_error_line(r.err)
    assert line.startswith(f"error: --batch {batch}: one input batch of") and "this device" in line
