"""A model out in a standard format: ONNX, TorchScript or torch.export, with its metadata.

Every format takes any batch size: ONNX and torch.export with a dynamic batch dimension
(``batch``), TorchScript by tracing, which records no batch size for these graphs; the parity
check runs batches of 1 and 3 to show it. Each file carries cnnkit's metadata (class names,
preprocessing, input shape) as one JSON document ``cnnkit``: ONNX ``metadata_props`` (also flat
keys ``task``, ``classes``, ``mean``, ``std``, ``input_shape``), TorchScript ``_extra_files``,
torch.export ``extra_files`` (``cnnkit.json``).

ONNX goes through ``torch.onnx.export(dynamo=True)``, torch.export-based, the default exporter
since torch 2.9 (it needs ``onnxscript``); the TorchScript-based exporter still exists in
torch 2.13 but is deprecated and is not used. The example batch is 2: torch.export specialises
a batch of 1 into a constant.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from cnnkit.errors import CnnkitError, MissingDependencyError

FORMATS = ("onnx", "torchscript", "exported")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "exported": ".pt2"}
OPSET = 18  # the dynamo exporter's own default in torch 2.13; --opset changes it
EXAMPLE_BATCH = 2  # a batch of 1 would be specialised into the graph as a constant
EXTRA_FILE = "cnnkit.json"
INPUT, OUTPUT = "input", "output"
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class ExportError(CnnkitError):
    """The model cannot be written in this format (exit code 2); the message says why."""


def check_format(fmt: str) -> None:
    """The format exists and, for ONNX, its packages are installed: before any work."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: expected onnx, torchscript or exported, got {fmt!r}")
    if fmt == "onnx":
        missing = [p for p in ONNX_PACKAGES if not _importable(p)]
        if missing:
            raise MissingDependencyError(
                f"--format onnx needs {', '.join(missing)}: pip install 'cnnkit[onnx]'"
            )


def _importable(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings, log lines and progress prints kept off stdout (``--json``
    prints one document there) and off stderr (a failure is one line)."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _replace(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def export(
    model: torch.nn.Module, example: torch.Tensor, fmt: str, path: Path, meta: dict[str, Any]
) -> None:
    """Write ``model`` to ``path`` in ``fmt`` with ``meta``; a model the format cannot
    express is one ``ExportError`` line naming the format and the exporter's reason."""
    model = model.eval()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = json.dumps(meta)
    try:
        with _quiet(), torch.no_grad():
            if fmt == "onnx":
                _onnx(model, example, tmp, meta, text)
            elif fmt == "torchscript":
                traced = torch.jit.trace(model, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={EXTRA_FILE: text})
            else:
                program = torch.export.export(model, (example,), dynamic_shapes=_dynamic())
                torch.export.save(program, str(tmp), extra_files={EXTRA_FILE: text})
        _replace(tmp, path)
    except CnnkitError:
        raise
    except Exception as err:  # the exporters raise anything; the reason is their first line
        raise ExportError(f"{fmt} cannot express this model: {_reason(err)}") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def _dynamic() -> tuple[dict[int, Any]]:
    return ({0: torch.export.Dim("batch", min=1)},)


def _reason(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = next((line for line in lines if not line.startswith("Failed to export")), "")
    return f"{type(err).__name__}: {first or (lines[0] if lines else '')}"[:300]


def _onnx(model: torch.nn.Module, example: torch.Tensor, tmp: Path, meta: dict, text: str) -> None:
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        dynamic_shapes=_dynamic(),
        opset_version=int(meta["opset"]),
        input_names=[INPUT],
        output_names=[OUTPUT],
        verbose=False,
    )
    props = program.model.metadata_props
    props["cnnkit"] = text
    for key in ("task", "classes", "mean", "std", "input_shape"):
        props[key] = json.dumps(meta[key])
    program.save(str(tmp))


def load(fmt: str, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exported file as a function of a batch, run by its own runtime: onnxruntime for
    ONNX, ``torch.jit.load`` and ``torch.export.load``."""
    with _quiet():
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

            def run(x: torch.Tensor) -> torch.Tensor:
                (out,) = session.run([OUTPUT], {INPUT: x.cpu().numpy()})
                return torch.from_numpy(out)

            return run
        if fmt == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu")
        else:
            module = torch.export.load(str(path)).module()
    return lambda x: module(x)


def metadata(fmt: str, path: Path) -> dict[str, Any]:
    """The ``cnnkit`` metadata read back from an exported file (tests and users check it)."""
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        found = json.loads(props["cnnkit"])
        found["opset_in_file"] = next(o.version for o in model.opset_import if o.domain == "")
        return found
    files = {EXTRA_FILE: ""}
    if fmt == "torchscript":
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    else:
        torch.export.load(str(path), extra_files=files)
    return json.loads(files[EXTRA_FILE])
