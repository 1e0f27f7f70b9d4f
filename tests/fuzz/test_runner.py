"""The judge itself: every failure the fuzz suite promises to catch is caught (a fuzz suite
whose classifier cannot fail proves nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.runner import Case, Worker, classify

CLEAN = {"code": 2, "killed": None, "maxrss_mb": 300.0, "stdout": "", "stdout_cut": False}


@pytest.mark.parametrize(
    ("argv", "result", "verdict"),
    [
        (["params", "x"], {"stderr": "error: x: no such file\n"}, "refused"),
        (["train", "x"], {"stderr": "epoch 1/1 ...\r\nerror: diverged\n"}, "refused"),
        (["params", "x"], {"stderr": "internal error: KeyError: 'a'\n"}, "internal"),
        (["params", "x"], {"stderr": "Traceback (most recent call last):\n  ...\n"}, "internal"),
        (["params", "x"], {"code": -11, "stderr": ""}, "internal"),
        (["params", "x"], {"code": 134, "stderr": "error: x\n"}, "internal"),
        (["params", "x"], {"stderr": "error: x: YAML\n  in <string>\n"}, "not-one-line"),
        (["params", "x"], {"code": 1, "stderr": "\naborted\n"}, "not-one-line"),
        (["params"], {"stderr": "Usage: cnnkit params [OPTIONS] TARGET\n"}, "help"),
        (["params", "x"], {"stderr": "", "killed": "hang"}, "hang"),
        (["params", "x"], {"stderr": "", "maxrss_mb": 1500.0}, "memory"),
        (["params", "x"], {"stderr": "internal error: MemoryError: x\n"}, "memory"),
        (["params", "x", "--json"], {"code": 0, "stderr": "", "stdout": '{"a": NaN}'}, "bad-json"),
        (["params", "x", "--json"], {"code": 0, "stderr": "", "stdout": '{"a": null}'}, "ok"),
        (["params", "x"], {"stderr": "error: .last.pt.123.tmp: No space left\n"}, "temp-file"),
    ],
)  # fmt: skip
def test_classify(argv, result, verdict, tmp_path):
    assert classify(Case("t", 0, argv), {**CLEAN, **result}, tmp_path) == verdict


def test_classify_sees_files_a_case_leaves(tmp_path):
    (tmp_path / "pwned").write_text("")
    assert classify(Case("t", 0, ["eval", "x"]), {**CLEAN, "stderr": "error: x\n"}, tmp_path) == (
        "code-exec"
    )
    (tmp_path / "pwned").unlink()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".last.pt.4242.tmp").write_bytes(b"")
    assert classify(Case("t", 0, ["eval", "x"]), {**CLEAN, "stderr": "error: x\n"}, tmp_path) == (
        "temp-file"
    )


def test_the_worker_kills_a_spinning_and_a_swelling_child(worker: Worker, tmp_path: Path):
    """Live: a child over its CPU limit dies of SIGXCPU, one over its memory limit is killed."""
    spin = worker.send({"dir": str(tmp_path), "argv": [], "python": "while True: pass", "cpu_s": 1})
    assert spin["killed"] == "hang" and spin["cpu_s"] >= 0.9
    swell = "x = bytearray(1 << 30); import time; time.sleep(5)"
    fat = worker.send({"dir": str(tmp_path), "argv": [], "python": swell, "rss_mb": 600})
    assert fat["killed"] == "memory" and fat["maxrss_mb"] > 600 and fat["wall_s"] < 5
