"""``cnnkit train RECIPE --print-config``: the recipe as a run would train it, nothing trained.

The text is the ``recipe.yaml`` a run folder would get (``plan.resolved_text``): the model
section as written, the ``data:`` and ``train:`` sections with every default filled in, after
``--set``. Validated like a run (one line per error) but no data is loaded and no model built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def resolved_config(recipe: str | Path, overrides: Sequence[str] = ()) -> str:
    """The resolved recipe as YAML (its first line a comment naming the recipe and ``--set``)."""
    from cnnkit.train.plan import load_with_overrides, resolved_text, sections

    parsed = load_with_overrides(recipe, list(overrides))
    data, train = sections(parsed)
    note = f"resolved by cnnkit train from {recipe}" + "".join(f" --set {o}" for o in overrides)
    return resolved_text(parsed, data, train, note)


def resolved_document(recipe: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The same recipe as plain data: what ``--print-config --json`` prints."""
    import yaml

    loaded = yaml.safe_load(resolved_config(recipe, overrides))
    return loaded if isinstance(loaded, dict) else {}
