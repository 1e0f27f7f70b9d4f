"""Segmentation scores: pixel accuracy, per-class IoU and Dice, mIoU, the pixel confusion matrix.

Pixels whose mask holds ``IGNORE`` are not scored. Every number is the one scikit-learn gives
on the flattened scored pixels (tested against it): ``iou`` is ``jaccard_score``, ``dice`` is
``f1_score`` (Dice = F1 per class), per class with ``labels`` = the model's classes and
``zero_division=0``; ``miou`` and ``mean_dice`` are their ``average="macro"`` over the classes
present in the truth or the predictions (scikit-learn's default labels). The confusion matrix
is accumulated batch by batch, so a test split never needs all its logits at once.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.train.data import Split

IGNORE = -100  # cnnkit.train.data.segment.IGNORE (F.cross_entropy's ignore_index)
ZERO_DIVISION = 0.0
MACRO_OVER = "classes present in the truth or the predictions"


def segment_sums(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(cross-entropy summed over scored pixels, correct pixels, scored pixels) as float64."""
    scored = y != IGNORE
    loss = F.cross_entropy(out.float(), y, reduction="sum")  # IGNORE pixels add nothing
    correct = ((out.argmax(1) == y) & scored).sum()
    return torch.stack([loss.double(), correct.double(), scored.sum().double()])


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """``[k, k]`` pixel counts, rows the true class, columns the predicted; IGNORE skipped."""
    scored = y != IGNORE
    index = y[scored] * k + pred[scored]
    return torch.bincount(index.flatten().cpu(), minlength=k * k).reshape(k, k)


def add_confusion(into: torch.Tensor | None, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``into`` plus this batch's ``[k, k]`` pixel counts, kept on the device with no host
    sync (ignored pixels add 0), so validation still reads the device once per epoch."""
    k = out.shape[1]
    if into is None:
        into = torch.zeros(k * k, device=out.device, dtype=torch.int64)
    scored = y != IGNORE
    index = (y.clamp_min(0) * k + out.argmax(1)).flatten()
    return into.reshape(-1).index_add_(0, index, scored.flatten().long()).reshape(k, k)


def mean_iou(confusion: torch.Tensor) -> float:
    """``scores``' mIoU alone: the mean IoU over the classes present in truth or predictions."""
    c = confusion.double()
    tp, predicted, actual = c.diag(), c.sum(0), c.sum(1)
    present = (predicted + actual) > 0
    iou = _ratio(tp, predicted + actual - tp)
    return iou[present].mean().item() if present.any() else float("nan")


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), ZERO_DIVISION)


def scores(confusion: torch.Tensor, classes: tuple[str, ...]) -> dict[str, Any]:
    """Every segmentation metric from the pixel confusion matrix."""
    c = confusion.double()
    tp, predicted, actual = c.diag(), c.sum(0), c.sum(1)
    iou = _ratio(tp, predicted + actual - tp)
    dice = _ratio(2 * tp, predicted + actual)
    present = (predicted + actual) > 0
    total = c.sum()
    nan = float("nan")
    return {
        "pixels": int(total.item()),
        "pixel_accuracy": (tp.sum() / total).item() if total > 0 else nan,
        "miou": iou[present].mean().item() if present.any() else nan,
        "mean_dice": dice[present].mean().item() if present.any() else nan,
        "averaging": {
            "macro": MACRO_OVER,
            "macro_classes": int(present.sum().item()),
            "zero_division": ZERO_DIVISION,
        },
        "per_class": [
            {
                "class": name,
                "iou": iou[i].item(),
                "dice": dice[i].item(),
                "support": int(actual[i].item()),
                "predicted": int(predicted[i].item()),
            }
            for i, name in enumerate(classes)
        ],
        "confusion": confusion.tolist(),
    }


@torch.no_grad()
def segmentation_report(
    model: torch.nn.Module, split: Split, classes: tuple[str, ...], batch_size: int
) -> dict[str, Any]:
    """The report ``cnnkit eval`` prints for ``task: segment`` (``summary.json``'s ``test``)."""
    model.eval()
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    sums = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for x, y in split.slices(range(0, len(split), batch_size), batch_size):
        pixels += y.numel()  # counted per batch: a StreamSplit holds no masks
        out = model(x).float()
        sums += segment_sums(out, y).cpu()
        confusion += confusion_matrix(out.argmax(1), y, k)
    loss, _, scored = sums.tolist()
    report = scores(confusion, classes)
    return {
        "task": "segment",
        "samples": len(split),
        "ignored": int(pixels - scored),
        "loss": loss / scored if scored else float("nan"),
        "accuracy": report["pixel_accuracy"],
        **report,
    }
