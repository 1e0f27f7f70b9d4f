"""``cnnkit train``'s options for a run's first weights: ``--init-from``, ``--freeze`` and
``--allow-partial``. Each is a recipe key (``train.init_from``, ``train.freeze``,
``train.init_partial``) given on the command line, so the run's ``recipe.yaml`` records it and
``--resume`` and ``--print-config`` see it like any ``--set``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cnnkit.errors import InputError

InitFromOpt = Annotated[
    str | None,
    typer.Option(
        "--init-from",
        metavar="PATH|NAME",
        help="Start from these weights, loaded by key: a run folder (its best.pt), a checkpoint, "
        "a state_dict file (.pt/.pth/.safetensors) or torchvision:NAME[:WEIGHTS] / timm:NAME "
        "(cached locally). A head of another class count is re-initialised.",
    ),
]
FreezeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--freeze",
        metavar="PREFIX",
        help="Train no parameter under this state_dict key prefix (repeatable).",
    ),
]
PartialOpt = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="--init-from: load the tensors that fit and skip the rest (default: any mismatch "
        "but the head's is an error).",
    ),
]


def init_overrides(init_from: str | None, freeze: list[str] | None, partial: bool) -> list[str]:
    """The options as ``--set`` values (JSON-quoted: a path is never read as YAML syntax)."""
    sets = []
    if init_from is not None:
        if not init_from.strip():
            raise InputError("--init-from '': give a run folder, a weights file or a name")
        sets.append(f"train.init_from={json.dumps(init_from)}")
    if partial:
        if init_from is None:
            raise InputError("--allow-partial applies to --init-from: give both")
        sets.append("train.init_partial=true")
    if freeze:
        sets.append(f"train.freeze={json.dumps(list(freeze))}")
    return sets


def check_not_resume(resume: str | None, sets: list[str]) -> None:
    """--resume continues a run with its own first weights and frozen layers."""
    if resume is not None and sets:
        raise InputError(
            "--init-from, --freeze and --allow-partial start a new run; --resume continues "
            "one with the weights and frozen layers it was started with"
        )
