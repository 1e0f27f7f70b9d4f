"""docs/guide.md runs: every command in it, in order, prints what the guide shows.

The engine is ``docs/run_guide.py`` (also the maintainer's ``--update`` tool), so the test
and the regeneration can never disagree about what a guide block means.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_guide", ROOT / "docs" / "run_guide.py")
assert _spec is not None and _spec.loader is not None
run_guide = importlib.util.module_from_spec(_spec)
sys.modules["run_guide"] = run_guide
_spec.loader.exec_module(run_guide)

PICTURES = ("docs/img/erf_resnet18.png", "docs/img/lenet_curves.png")


@pytest.fixture(scope="module")
def guide_run(tmp_path_factory):
    guide = run_guide.parse(run_guide.GUIDE.read_text(encoding="utf-8"))
    work = tmp_path_factory.mktemp("guide")
    return guide, work, run_guide.run_guide(guide, work)


def test_every_command_prints_what_the_guide_shows(guide_run):
    _, _, outcomes = guide_run
    failures = [o.report() for o in outcomes if not o.ok]
    assert not failures, "\n\n".join(failures) + "\n\nregenerate: python docs/run_guide.py --update"


def test_the_guide_covers_the_course(guide_run):
    guide, _, outcomes = guide_run
    text = "\n".join(c.text for c in guide.commands)
    for needle in (
        '--w "1 0.5 0.25" --mode full',
        "--xcorr --explain",
        "--target",
        "--layer deconv",
        "cnnkit rf resnet18",
        "--erf",
        "--grad-stats --sweep",
        "params lenet1998",
        "train lenet",
        "eval runs/lenet --plot",
        "cnnkit profile",
        "ci_gate.sh",
    ):
        assert needle in text, needle
    assert len(outcomes) >= 30


def test_file_blocks_show_the_files(guide_run):
    guide, _, _ = guide_run
    assert [b.path for b in guide.files] == ["docs/ci_gate.sh"]
    assert run_guide.file_differences(guide) == []


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    from PIL import Image

    with Image.open(path) as image:
        image.verify()  # checks the chunks' CRCs
    return width, height


@pytest.mark.parametrize("name", PICTURES)
def test_pictures_are_drawn_by_the_commands(guide_run, name):
    guide, work, _ = guide_run
    assert Path(name).name in "\n".join(guide.lines)  # the guide shows it
    for path in (work / name, ROOT / name):  # drawn now, and the committed copy
        width, height = _png_size(path)
        assert 200 <= width <= 2000 and 200 <= height <= 2000, (path, width, height)


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (["a 1", "b"], ["a 1  ", "b", ""], True),
        (["a 1"], ["a 2"], False),
        (["took … s"], ["took 3.2 s"], True),
        (["took … s"], ["took 3.2 ms"], False),
        (["head", "...", "tail"], ["head", "x", "y", "tail"], True),
        (["head", "...", "tail"], ["head", "tail"], True),
        (["head", "...", "tail"], ["head", "x"], False),
        (["a (b) [c] *"], ["a (b) [c] *"], True),
    ],
)
def test_matching_rules(expected, actual, ok):
    assert run_guide.matches(expected, actual) is ok


def test_parse_joins_continuations_and_ignores_other_fences():
    text = "\n".join(
        [
            "```bash",
            "$ not run",
            "```",
            "```console",
            "$ echo a \\",
            "    b",
            "a b",
            "$ true",
            "```",
        ]
    )
    guide = run_guide.parse(text)
    assert [c.text for c in guide.commands] == ["echo a \\\n    b", "true"]
    assert guide.commands[0].expected == ["a b"]
    assert guide.commands[1].expected == []


def _outcome(command: str, expected: list[str], actual: list[str], same: bool):
    cmd = run_guide.Command(command, expected, 1, (0, len(expected)))
    return run_guide.Outcome(cmd, 0, actual, 0.0, same_machine=same)


def test_trained_numbers_are_exact_on_the_recording_machine_and_words_elsewhere():
    """Another CPU trains to other numbers (the kernels sum in other orders): there a trained
    output keeps every word and verdict, and only its numbers may differ."""
    shown = ["┃ epoch ┃ val acc ┃", "│     8 │  98.89% │", "test accuracy 98.33% with best.pt"]
    other = ["┃ epoch ┃ val acc ┃", "│    11 │ 100.00% │", "test accuracy 98.05% with best.pt"]
    worse = ["┃ epoch ┃ val acc ┃", "│    11 │ 100.00% │", "error: accuracy 0.96 is below 0.97"]
    train = "cnnkit train lenet --out runs/lenet"
    assert not _outcome(train, shown, other, same=True).ok
    assert _outcome(train, shown, other, same=False).ok
    assert not _outcome(train, shown, worse, same=False).ok
    assert not _outcome("cnnkit params lenet", shown, other, same=False).ok  # not trained
    assert _outcome(train, shown, shown, same=True).ok


def test_the_guide_records_the_machine_its_trained_outputs_came_from(tmp_path: Path):
    guide = run_guide.parse(run_guide.GUIDE.read_text(encoding="utf-8"))
    assert guide.recorded_on
    env = run_guide.environment(tmp_path)
    assert "torch" in run_guide.machine(env) and "threads" in run_guide.machine(env)
