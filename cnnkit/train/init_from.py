"""``train.init_from`` (``--init-from``): a new run starts from weights saved elsewhere, by key.

The source is a run folder (its ``best.pt``, else ``last.pt``), a cnnkit checkpoint, a plain
``state_dict`` file (bare, or under one of ``WRAPPERS``; ``.safetensors`` when that package is
installed) or a ``torchvision:``/``timm:`` name (``cnnkit.train.init_names``). Every file is
read with ``weights_only=True``. Keys are compared before anything is copied: the classifier
head (the last layer with parameters on the path to the model's output) may differ in shape
and is then left at its fresh, seeded initialisation; any other mismatch is an error unless
``train.init_partial`` is set, because a silently half-loaded model is a wrong result.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.errors import CheckpointError, MissingDependencyError

if TYPE_CHECKING:
    import torch

# The mappings a saved file may hold its state_dict under: timm's train script and many others
# save {"state_dict": ...}, some {"model": ...}, PyTorch's tutorials {"model_state_dict": ...}.
WRAPPERS = ("state_dict", "model", "model_state_dict")
DDP_PREFIX = "module."  # torch DistributedDataParallel's wrapper: stripped when every key has it
SHOWN = 3  # names listed per kind of mismatch in the one-line error
NAMED = re.compile(r"^(torchvision|timm):\S+$")


@dataclass
class Weights:
    """A source, read: what kind it was, the file it came from, and its tensors by key."""

    kind: str  # run | checkpoint | state_dict | safetensors | torchvision | timm
    file: Path | None
    state: dict[str, torch.Tensor]


@dataclass
class Fit:
    """How a source's keys meet the model's: which load, which do not and why."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the model's, absent from the source
    unexpected: list[str] = field(default_factory=list)  # the source's, absent from the model
    wrong_shape: list[dict[str, Any]] = field(default_factory=list)  # {key, file, model}
    reinitialised: list[dict[str, Any]] = field(default_factory=list)  # the head's, likewise

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.wrong_shape)


def read_source(spec: str) -> Weights:
    """The tensors ``spec`` names; every failure is one line naming it."""
    from cnnkit.train.checkpoint import FORMAT, load_checkpoint, read_weights_only

    path = Path(spec)
    if NAMED.match(spec) and not path.exists():
        from cnnkit.train.init_names import named_weights

        return named_weights(spec)
    if path.is_dir():
        from cnnkit.train import runs

        file = next((path / n for n in (runs.BEST, runs.LAST) if (path / n).is_file()), None)
        if file is None:
            raise CheckpointError("a folder without best.pt or last.pt (a run folder?)", where=spec)
        return Weights("run", file, load_checkpoint(file)["model"])
    if not path.is_file():
        raise CheckpointError("no such file, run folder or torchvision:/timm: name", where=spec)
    if path.suffix == ".safetensors":
        return Weights("safetensors", path, read_safetensors(path))
    obj = read_weights_only(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return Weights("checkpoint", path, load_checkpoint(path)["model"])
    return Weights("state_dict", path, state_dict_of(obj, spec))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise MissingDependencyError(
            f"{path}: reading .safetensors needs the safetensors package: pip install safetensors"
        ) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # noqa: BLE001 - its parser raises its own error types
        raise CheckpointError(f"cannot read safetensors file ({err})", where=str(path)) from None


def state_dict_of(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """A mapping of names to tensors: ``obj`` itself or the one under a ``WRAPPERS`` key,
    without DDP's ``module.`` prefix."""
    import torch

    def tensors(value: Any) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
        )

    found = obj if tensors(obj) and obj else None
    if found is None and isinstance(obj, dict):
        found = next((obj[w] for w in WRAPPERS if w in obj and tensors(obj[w]) and obj[w]), None)
    if found is None:
        keys = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            "not a state_dict: expected a mapping of names to tensors, bare or under "
            f"{', '.join(repr(w) for w in WRAPPERS)} (found {keys})",
            where=where,
        )
    if all(k.startswith(DDP_PREFIX) for k in found):
        found = {k[len(DDP_PREFIX) :]: v for k, v in found.items()}
    return dict(found)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def head_name(module: torch.nn.Module) -> str | None:
    """The classifier head: for a recipe's model, the last layer with parameters on the path
    back from the graph's output (through flatten, pooling, activations, dropout); for
    another library's model, the last module that holds parameters of its own."""
    from cnnkit.recipe.graph import INPUT, Graph

    graph = getattr(module, "graph", None)
    if isinstance(graph, Graph):
        nodes = {n.name: n for n in graph.nodes}
        node = nodes.get(graph.output)
        while node is not None:
            if next(module.get_submodule(node.name).parameters(), None) is not None:
                return node.name
            first = node.inputs[0] if node.inputs else INPUT
            node = nodes.get(first)
        return None
    last = None
    for name, child in module.named_modules():
        if next(child.parameters(recurse=False), None) is not None:
            last = name
    return last


def under(key: str, prefix: str) -> bool:
    """``key`` is ``prefix`` or lies below it (``layer1`` holds ``layer1.0.conv1.weight``, not
    ``layer10.weight``)."""
    return key == prefix or key.startswith(prefix + ".")


def compare(model: dict[str, Any], source: dict[str, Any], head: str | None) -> Fit:
    """Key by key: what loads, what is missing, unexpected or of the wrong shape; the head's
    keys that do not fit are to be re-initialised instead."""
    fit = Fit()
    for key, tensor in model.items():
        given = source.get(key)
        if given is not None and tuple(given.shape) == tuple(tensor.shape):
            fit.loaded.append(key)
            continue
        entry = {
            "key": key,
            "file": None if given is None else list(given.shape),
            "model": list(tensor.shape),
        }
        if head is not None and under(key, head):
            fit.reinitialised.append(entry)
        elif given is None:
            fit.missing.append(key)
        else:
            fit.wrong_shape.append(entry)
    fit.unexpected = [k for k in source if k not in model]
    return fit


def _listed(names: list[str]) -> str:
    more = f", and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def mismatch_line(fit: Fit, total: int) -> str:
    """One line: every kind of mismatch with its count and first names."""
    parts = []
    if fit.missing:
        parts.append(f"{len(fit.missing)} missing ({_listed(fit.missing)})")
    if fit.unexpected:
        parts.append(f"{len(fit.unexpected)} unexpected ({_listed(fit.unexpected)})")
    if fit.wrong_shape:
        shapes = [f"{w['key']} {w['file']} in the file, {w['model']} here" for w in fit.wrong_shape]
        parts.append(f"{len(fit.wrong_shape)} of the wrong shape ({_listed(shapes)})")
    return (
        f"the weights do not fit the recipe's model: {'; '.join(parts)}; {len(fit.loaded)} "
        f"of its {total} tensors fit (--allow-partial, or train.init_partial: true, loads those)"
    )


def apply_init(module: torch.nn.Module, spec: str, partial: bool) -> dict[str, Any]:
    """Load ``spec``'s weights into ``module`` by key; returns the record the run keeps."""
    weights = read_source(spec)
    target = module.state_dict()
    fit = compare(target, weights.state, head_name(module))
    if fit.problems and not partial:
        raise CheckpointError(mismatch_line(fit, len(target)), where=spec)
    if not fit.loaded:
        raise CheckpointError(
            f"none of the model's {len(target)} tensors is in the file under its name", where=spec
        )
    module.load_state_dict({k: weights.state[k] for k in fit.loaded}, strict=False)
    return {
        "source": spec,
        "kind": weights.kind,
        "file": None if weights.file is None else str(weights.file),
        "sha256": None if weights.file is None else sha256(weights.file),
        "tensors": len(target),
        "loaded": len(fit.loaded),
        "missing": fit.missing,
        "unexpected": fit.unexpected,
        "wrong_shape": fit.wrong_shape,
        "reinitialised": fit.reinitialised,
    }


def init_line(record: dict[str, Any]) -> str:
    """What the run prints on stderr about its first weights."""
    line = f"initialised from {record['source']} ({record['kind']}"
    line += f", {Path(record['file']).name})" if record["file"] else ")"
    line += f": loaded {record['loaded']} of {record['tensors']} tensors"
    if record["reinitialised"]:
        heads = [
            f"{r['key']} {r['file'] or 'absent'} -> {r['model']}" for r in record["reinitialised"]
        ]
        line += f"; head re-initialised: {', '.join(heads)}"
    skipped = len(record["missing"]) + len(record["unexpected"]) + len(record["wrong_shape"])
    if skipped:
        line += (
            f"; --allow-partial skipped {len(record['missing'])} missing, "
            f"{len(record['unexpected'])} unexpected, {len(record['wrong_shape'])} wrong-shape"
        )
    return line
