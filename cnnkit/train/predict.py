"""What a trained model says about new inputs: top-k classes, regression values, masks.

The forward pass is evaluation's own (``cnnkit.train.evaluate.predict``: eval mode, batched,
float32 on the CPU), so ``cnnkit predict`` and ``cnnkit eval`` agree on every file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnkit.train.data import Split
from cnnkit.train.evaluate import predict


def forward(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's raw outputs for ``x``, ``batch_size`` inputs at a time."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return predict(model, Split(x.to(device), torch.zeros(len(x))), batch_size)


def top_classes(logits: torch.Tensor, classes: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """Per input, the ``k`` most probable classes (softmax), most probable first."""
    probs = torch.softmax(logits.double(), dim=1)
    values, index = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [
            {"class": classes[i] if i < len(classes) else str(i), "index": i, "probability": p}
            for i, p in zip(row_i.tolist(), row_p.tolist())
        ]
        for row_i, row_p in zip(index, values)
    ]


def write_masks(
    logits: torch.Tensor, names: Sequence[str], out: Path, classes: int
) -> list[dict[str, Any]]:
    """Each input's per-pixel argmax as a class-index PNG (pixel value = class index, mode L
    up to 256 classes, else 32-bit I) in ``out``, at the model's input size; the format
    ``data:`` reads masks in, so a prediction can be read back as a label."""
    from PIL import Image

    from cnnkit.atomic import atomic_open

    out.mkdir(parents=True, exist_ok=True)
    masks = logits.argmax(1).to(torch.int64)
    written = []
    taken: set[str] = set()
    for name, mask in zip(names, masks):
        stem = _unique(Path(name).stem or "input", taken)
        path = out / f"{stem}.png"
        mode, dtype = ("L", "uint8") if classes <= 256 else ("I", "int32")
        image = Image.fromarray(mask.numpy().astype(dtype), mode=mode)
        with atomic_open(path, "wb") as handle:  # a reader never sees half a PNG
            image.save(handle, format="PNG")
        counts = torch.bincount(mask.flatten(), minlength=classes).tolist()
        written.append({"mask": str(path), "pixels": counts})
    return written


def _unique(stem: str, taken: set[str]) -> str:
    """``a``, then ``a-1``, ``a-2``: two inputs named alike never overwrite one mask."""
    name, n = stem, 0
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name
