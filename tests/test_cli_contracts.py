"""The CLI's contracts on any input: strict JSON, one-line usage errors, the user's paths."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from cnnkit.atomic import write_text
from tests.clitools import run_cli
from tests.trainkit import TINY_TRAIN, tiny_recipe


def _strict(text: str) -> object:
    """Parse as RFC 8259 JSON: Python's NaN/Infinity extensions are rejected."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory) -> Path:
    """A trained tiny model whose last layer's weights are all NaN: every loss is NaN."""
    folder = tmp_path_factory.mktemp("nan")
    recipe = tiny_recipe(folder, TINY_TRAIN.replace("epochs: 3", "epochs: 1"))
    r = run_cli("train", str(recipe), "--out", str(folder / "run"))
    assert r.code == 0, r.err
    from cnnkit.train.checkpoint import CHECKSUM, save_atomic

    checkpoint = torch.load(folder / "run" / "best.pt", weights_only=False)
    checkpoint.pop(CHECKSUM, None)
    checkpoint["model"]["fc.weight"].fill_(float("nan"))
    save_atomic(checkpoint, folder / "nan.pt")  # a valid checkpoint of NaN weights
    return folder / "nan.pt"


def test_json_with_a_nan_loss_is_strict_json_with_null(nan_checkpoint):
    r = run_cli("eval", str(nan_checkpoint), "--json")
    assert r.code == 0, r.err
    doc = _strict(r.out)
    assert doc["loss"] is None  # torch's own loss of NaN logits is NaN
    logits = torch.full((2, 10), float("nan"))
    assert torch.isnan(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])))


def test_emit_json_replaces_every_non_finite_float(capsys):
    from cnnkit.cli.output import emit_json

    emit_json({"a": float("inf"), "b": [float("-inf"), 1.5, (float("nan"),)], "c": 2})
    assert _strict(capsys.readouterr().out) == {"a": None, "b": [None, 1.5, [None]], "c": 2}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--foo"], "cnnkit train: no such option --foo"),
        (["eval", "x", "--nope"], "cnnkit eval: no such option --nope"),
        (["profile", "lenet", "--bogus"], "cnnkit profile: no such option --bogus"),
        (["params", "lenet1998", "--depht"], "(did you mean --depth"),
        (["conv", "--input"], "cnnkit conv: option '--input' requires an argument"),
        (["eval", "--json"], "cnnkit eval: missing argument 'RUN|CHECKPOINT'"),
        (["eval", "a", "b"], "cnnkit eval: got unexpected extra argument"),
        (["nosuchcommand"], "cnnkit: no such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, needle):
    r = run_cli(*args)
    assert r.code == 2, r
    assert r.out == ""
    assert r.err.startswith("error: ") and r.err.count("\n") == 1, r.err
    assert needle in r.err, r.err


@pytest.mark.parametrize("command", ["train", "eval", "profile", "conv"])
def test_help_still_works(command):
    r = run_cli(command, "--help")
    assert r.code == 0
    assert r.out.startswith(f"Usage: cnnkit {command}")


@pytest.mark.parametrize("option", ["--device", "--json"])
def test_eval_device_unknown_is_one_line(nan_checkpoint, option):
    args = ["eval", str(nan_checkpoint), "--device", "fp8"]
    r = run_cli(*args, *([option] if option == "--json" else []))
    assert r.code == 2, r
    assert r.err.count("\n") == 1 and "KeyError" not in r.err, r.err
    assert "--device" in r.err and "'fp8'" in r.err and "auto, cuda, mps, cpu" in r.err


def test_train_and_profile_device_unknown_is_one_line(tmp_path):
    recipe = tiny_recipe(tmp_path)
    for args in (
        ["train", str(recipe), "--set", "train.device=fp8", "--out", str(tmp_path / "r")],
        ["profile", "lenet", "--device", "fp8"],
    ):
        r = run_cli(*args)
        assert r.code == 2, r
        assert r.err.count("\n") == 1 and "fp8" in r.err and "device" in r.err, r.err


def _fail_on_temporary(monkeypatch, name: str) -> None:
    real = getattr(os, name)

    def failing(src, *rest, **kw):
        if str(src).endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, *rest, **kw)

    monkeypatch.setattr(os, name, failing)


@pytest.mark.parametrize("failing", ["replace", "fsync_open"])
def test_a_failed_write_names_the_users_file(tmp_path, monkeypatch, failing):
    target = tmp_path / "out.json"
    if failing == "replace":
        _fail_on_temporary(monkeypatch, "replace")
    else:
        import builtins

        real_open = builtins.open

        def full_disk(file, *args, **kw):
            if str(file).endswith(".tmp"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
            return real_open(file, *args, **kw)

        monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(OSError) as caught:
        write_text(target, "{}")
    assert caught.value.filename == str(target)
    assert caught.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())  # no temporary left behind
    r = run_cli("params", "lenet1998", "--csv", str(target))
    assert r.code == 2, r
    assert str(target) in r.err and ".tmp" not in r.err, r.err
    assert r.err.count("\n") == 1, r.err


def test_a_missing_folder_names_the_users_file(tmp_path):
    target = tmp_path / "absent" / "layers.csv"
    with pytest.raises(OSError) as caught:
        write_text(target, "{}")
    assert caught.value.filename == str(target)
    assert caught.value.errno == errno.ENOENT


def test_a_crash_is_exit_code_3_not_a_failed_gate(monkeypatch):
    """1 is a failed gate and 2 bad input; a bug in cnnkit is 3, so a CI script can tell them
    apart. Still one line, and --debug shows the traceback."""
    import cnnkit.recipe

    def crash(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cnnkit.recipe, "builtin_recipes", crash)
    r = run_cli("recipes")
    assert r.code == 3, r.err
    assert r.err.startswith("internal error: ZeroDivisionError: a bug") and r.err.count("\n") == 1
    with pytest.raises(ZeroDivisionError):
        run_cli("recipes", "--debug")
    monkeypatch.undo()  # without the planted bug, bad input is still 2
    assert run_cli("recipes", "no-such-recipe").code == 2
