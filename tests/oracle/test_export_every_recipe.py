"""ONNX and torch.export parity for every built-in recipe, run in the oracle stage.

Stage 1 (tests/test_export_builtins.py) exports every recipe to TorchScript but only a quick
subset to ONNX and torch.export, whose dynamo tracing takes 10-80 s per large recipe on one
core; this stage, in its own venv and with its own torch release, checks the rest, against
onnxruntime and ``torch.export.load`` (the same checks as stage 1's, imported from there).
"""

from __future__ import annotations

import pytest
import torch

from tests import test_export_builtins as exports
from tests.oracle.conftest import ORACLE, require

CASES = [
    (name, fmt)
    for fmt in ("onnx", "exported")
    for name in exports.NAMES
    if name not in exports.QUICK[fmt]  # stage 1 runs those
]


@pytest.mark.skipif(not ORACLE, reason="the oracle stage (CNNKIT_ORACLE=1) runs every recipe")
@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_every_builtin_recipe_exports_with_parity(name, fmt, tmp_path):
    if fmt == "onnx":
        require("onnxruntime")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exports._check(name, fmt, tmp_path, None)
    finally:
        torch.set_num_threads(before)
