"""Evaluation: the quick per-epoch loss/accuracy, and the full report of ``cnnkit eval``.

Losses here are the plain criterion (cross-entropy without label smoothing, or MSE), so
validation numbers mean the same thing whatever the training recipe smoothed. Both are
reduced like the training loss: a mean over images, and for MSE also over target columns,
so ``val_loss`` and ``train_loss`` of one run are on the same scale.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from cnnkit.nn.data import Split
from cnnkit.nn.runtime import World


def _sum_of_image_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each image's MSE over its target columns, summed over images: divided by the image
    count this is ``F.mse_loss``'s mean, the loss training minimises."""
    squared = F.mse_loss(out.float(), y.float(), reduction="none")
    return squared.reshape(len(y), -1).mean(1).sum()


PLAIN_LOSS = {  # summed over the batch's images; evaluate divides by the image count
    "classify": lambda out, y: F.cross_entropy(out.float(), y, reduction="sum"),
    "regress": _sum_of_image_mse,
}


def _batches(n: int, size: int, world: World) -> range:
    """This rank's share of the evaluation batches (all of them with one process)."""
    return range(world.rank * size, n, size * world.size)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: Split,
    task: str,
    batch_size: int,
    world: World = World(),
    autocast: Any = contextlib.nullcontext,
) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over ``split``; one sync at the end."""
    was_training = model.training
    model.eval()
    device = split.x.device
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss, correct, count
    for start in _batches(len(split), batch_size, world):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        with autocast():
            out = model(x)
        sums[0] += PLAIN_LOSS[task](out, y)
        if task == "classify":
            sums[1] += (out.argmax(1) == y).sum()
        sums[2] += len(y)
    model.train(was_training)
    loss, correct, count = world.sum(sums).tolist()
    result = {"loss": loss / max(count, 1)}
    if task == "classify":
        result["accuracy"] = correct / max(count, 1)
    return result


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int) -> torch.Tensor:
    """The model's raw outputs for every sample of ``split`` (eval mode, float32, on CPU)."""
    model.eval()
    outs = [model(split.x[i : i + batch_size]).float() for i in range(0, len(split), batch_size)]
    return torch.cat(outs).cpu()


def classification_report(
    logits: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...], top_k: int = 5
) -> dict[str, Any]:
    """Loss, accuracy, top-k, per-class precision/recall/F1 and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class i predicted as j. Precision, recall and F1
    of a class with no predictions or no samples are 0 (scikit-learn's ``zero_division=0``).
    """
    y = y.cpu()
    n, k = len(y), len(classes)
    pred = logits.argmax(1)
    top = min(top_k, logits.shape[1])
    in_top = (logits.topk(top, dim=1).indices == y[:, None]).any(1)
    confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = confusion.diag().double()
    predicted, actual = confusion.sum(0).double(), confusion.sum(1).double()
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), 0.0)
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), 0.0)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), 0.0)
    per_class = [
        {
            "class": name,
            "precision": precision[i].item(),
            "recall": recall[i].item(),
            "f1": f1[i].item(),
            "support": int(actual[i].item()),
        }
        for i, name in enumerate(classes)
    ]
    return {
        "task": "classify",
        "samples": n,
        "loss": F.cross_entropy(logits, y).item() if n else float("nan"),
        "accuracy": (pred == y).double().mean().item() if n else float("nan"),
        "top_k": top,
        "top_k_accuracy": in_top.double().mean().item() if n else float("nan"),
        "macro_f1": f1.mean().item() if k else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def regression_report(pred: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """MSE, MAE and R² (1 - SS_res / SS_tot, pooled over all target columns)."""
    y = y.cpu().double()
    pred = pred.double().reshape(y.shape)
    err = pred - y
    ss_tot = ((y - y.mean(0)) ** 2).sum().item()
    return {
        "task": "regress",
        "samples": len(y),
        "loss": (err**2).mean().item(),
        "mse": (err**2).mean().item(),
        "mae": err.abs().mean().item(),
        "r2": 1 - (err**2).sum().item() / ss_tot if ss_tot > 0 else float("nan"),
    }


def full_report(
    model: torch.nn.Module,
    split: Split,
    task: str,
    classes: tuple[str, ...],
    batch_size: int,
    top_k: int = 5,
) -> dict[str, Any]:
    """The report ``cnnkit eval`` prints and ``summary.json`` stores for the test split."""
    out = predict(model, split, batch_size)
    if task == "classify":
        return classification_report(out, split.y, classes, top_k)
    return regression_report(out, split.y)
