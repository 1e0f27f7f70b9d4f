"""``--sweep KEY.PATH=V1,V2,...``: the combinations to train, and one comparison row per run.

No torch here: parsing and rows are plain data, so they are checked before anything trains.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from cnnkit.errors import InputError

_OPEN, _CLOSE = "[{", "]}"
_EXAMPLE = "e.g. train.lr=0.1,0.01 or train.betas=[0.9,0.99],[0.8,0.9]"


def split_values(text: str) -> list[str]:
    """``0.1,0.01`` -> two values; commas inside ``[...]``, ``{...}`` or quotes do not split,
    so ``[0.9,0.99],[0.8,0.9]`` is two YAML lists. Raises ValueError when brackets or quotes
    do not match."""
    values, depth, quote, current = [], [], "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and current.rstrip()[-1:] in ("", *_OPEN, ",", ":"):
            quote = char  # a YAML quoted scalar starts a value; "it's" is plain text
        elif char in _OPEN:
            depth.append(_CLOSE[_OPEN.index(char)])
        elif char in _CLOSE:
            if not depth or depth.pop() != char:
                raise ValueError(f"unmatched {char!r}")
        elif char == "," and not depth:
            values.append(current)
            current = ""
            continue
        current += char
    if quote or depth:
        raise ValueError(f"unclosed {quote or _OPEN[_CLOSE.index(depth[-1])]!r}")
    return [v.strip() for v in [*values, current] if v.strip()]


def parse_sweep(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Each ``--sweep`` item as (key, its values); a malformed item is the user's input."""
    axes = []
    for item in items:
        key, sep, values = item.partition("=")
        try:
            choices = split_values(values)
        except ValueError as err:
            raise InputError(f"--sweep {item}: {err}; {_EXAMPLE}") from None
        if not sep or not key.strip() or not choices:
            raise InputError(f"--sweep {item}: expected KEY.PATH=V1,V2,... {_EXAMPLE}")
        axes.append((key.strip(), choices))
    return axes


def combinations(items: Sequence[str]) -> list[dict[str, str]]:
    """Every combination of the swept values, the first key varying slowest."""
    axes = parse_sweep(items)
    keys = [k for k, _ in axes]
    return [dict(zip(keys, values)) for values in itertools.product(*(v for _, v in axes))]


def sweep_row(combo: dict[str, str], summary: dict[str, Any]) -> dict[str, Any]:
    """One run of a sweep as a flat row: its swept values, then what it reached (a key the
    run lacks, e.g. a test score without a test split, is left out)."""
    final, test = summary.get("final", {}), summary.get("test") or {}
    grads = summary.get("grad_stats") or {}
    best = summary.get("best") or {}
    row: dict[str, Any] = dict(combo)
    row.update(
        {
            "status": summary["status"],
            "epochs": summary.get("epochs"),
            f"best_{best.get('metric') or 'value'}": best.get("value"),
            "best_epoch": best.get("epoch"),
            "final_train_loss": final.get("train_loss"),
            "final_val_loss": final.get("val_loss"),
            "final_val_accuracy": final.get("val_accuracy"),
            "test_accuracy": test.get("accuracy"),
            "test_mse": test.get("mse"),
            "test_miou": test.get("miou"),  # segment
            "grad_first": _sig(grads.get("first", {}).get("grad_norm")),
            "grad_last": _sig(grads.get("last", {}).get("grad_norm")),
            "grad_ratio": _sig(grads.get("ratio")),
            "time_s": round(summary["time_s"], 2) if "time_s" in summary else None,
            "params": summary.get("params"),
            "run_dir": summary.get("run_dir"),
            "error": summary.get("error"),
        }
    )
    return {k: v for k, v in row.items() if v is not None}


def _sig(value: float | None) -> float | None:
    """Three significant digits: gradient norms span orders of magnitude, so round relatively."""
    return None if value is None else float(f"{value:.3g}")
