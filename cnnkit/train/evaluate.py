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

from cnnkit.train.data import Split
from cnnkit.train.runtime import World
from cnnkit.train.segment_eval import add_confusion, mean_iou, segment_sums, segmentation_report


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
    """Mean loss (and accuracy for classification; pixel accuracy and mIoU for segmentation)
    over ``split``; one sync at the end."""
    was_training = model.training
    model.eval()
    device = split.device
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss, correct, count
    confusion = None  # segment: the pixel confusion matrix, for the mIoU
    for x, y in split.slices(_batches(len(split), batch_size, world), batch_size):
        with autocast():
            out = model(x)
        if task == "segment":  # per scored pixel: loss and pixel accuracy
            sums += segment_sums(out, y)
            confusion = add_confusion(confusion, out, y)
            continue
        sums[0] += PLAIN_LOSS[task](out, y)
        if task == "classify":
            sums[1] += (out.argmax(1) == y).sum()
        sums[2] += len(y)
    model.train(was_training)
    loss, correct, count = world.sum(sums).tolist()
    result = {"loss": loss / max(count, 1)}
    if task in ("classify", "segment"):
        result["accuracy"] = correct / max(count, 1)
    if confusion is not None:
        result["miou"] = mean_iou(world.sum(confusion).cpu())
    return result


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int) -> torch.Tensor:
    """The model's raw outputs for every sample of ``split`` (eval mode, float32, on CPU)."""
    model.eval()
    starts = range(0, len(split), batch_size)
    outs = [model(x).float() for x, _ in split.slices(starts, batch_size)]
    return torch.cat(outs).cpu()


ZERO_DIVISION = 0.0  # a precision or recall of 0/0 (scikit-learn's zero_division=0)
MACRO_OVER = "classes present in the truth or the predictions"  # scikit-learn's default labels
R2_MULTIOUTPUT = "uniform_average"  # scikit-learn's default: the mean of per-target R²


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), ZERO_DIVISION)


def _per_class_scores(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall and F1 per class from the confusion matrix (rows: true class)."""
    tp = confusion.diag().double()
    predicted, actual = confusion.sum(0).double(), confusion.sum(1).double()
    precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
    f1 = _ratio(2 * tp, predicted + actual)  # = 2PR/(P+R), and 0 when TP is 0
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def _macro(scores: dict[str, torch.Tensor], present: torch.Tensor) -> dict[str, float]:
    """Unweighted means over the classes present in truth or predictions: a class the test
    split never shows and the model never predicts has no precision or recall to average."""
    if not present.any():
        return {f"macro_{k}": float("nan") for k in ("precision", "recall", "f1")}
    out = {f"macro_{k}": scores[k][present].mean().item() for k in ("precision", "recall", "f1")}
    weights = scores["support"] / scores["support"].sum()
    out["weighted_f1"] = (scores["f1"] * weights).sum().item()
    return out


def classification_report(
    logits: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...], top_k: int = 5
) -> dict[str, Any]:
    """Loss, accuracy, top-k, per-class precision/recall/F1 and the confusion matrix.

    ``confusion[i][j]`` counts samples of true class i predicted as j. Every number is the one
    ``sklearn.metrics`` gives (tested against it): per class with ``labels`` = the model's
    classes and ``zero_division=0``; macro averages over ``MACRO_OVER`` (its default labels);
    ``weighted_f1`` weights each class by its support.
    """
    y = y.cpu()
    n, k = len(y), len(classes)
    pred = logits.argmax(1)
    top = min(top_k, logits.shape[1])
    in_top = (logits.topk(top, dim=1).indices == y[:, None]).any(1)
    confusion = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    scores = _per_class_scores(confusion)
    present = (confusion.sum(0) + confusion.sum(1)) > 0
    per_class = [
        {
            "class": name,
            "precision": scores["precision"][i].item(),
            "recall": scores["recall"][i].item(),
            "f1": scores["f1"][i].item(),
            "support": int(scores["support"][i].item()),
        }
        for i, name in enumerate(classes)
    ]
    macro = _macro(scores, present) if n else {}
    return {
        "task": "classify",
        "samples": n,
        "loss": F.cross_entropy(logits, y).item() if n else float("nan"),
        "accuracy": (pred == y).double().mean().item() if n else float("nan"),
        "top_k": top,
        "top_k_accuracy": in_top.double().mean().item() if n else float("nan"),
        "macro_f1": macro.get("macro_f1", float("nan")),
        "macro_precision": macro.get("macro_precision", float("nan")),
        "macro_recall": macro.get("macro_recall", float("nan")),
        "weighted_f1": macro.get("weighted_f1", float("nan")),
        "averaging": {
            "macro": MACRO_OVER,
            "macro_classes": int(present.sum().item()),
            "zero_division": ZERO_DIVISION,
        },
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def r2_per_target(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SS_res / SS_tot per target column; a constant column scores 1 when predicted
    exactly and 0 otherwise (scikit-learn's ``force_finite``), never NaN or -inf."""
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    r2 = torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), 0.0)
    return torch.where(ss_res == 0, 1.0, r2)


def regression_report(pred: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """MSE, RMSE, MAE and R² as ``sklearn.metrics`` gives them (tested against it).

    MSE and MAE average over every image and target (the same under uniform and variance
    weighting); ``rmse`` is the square root of that pooled MSE, and per target it is
    ``root_mean_squared_error``'s raw values (the mean of per-target RMSEs, its
    ``uniform_average``, is not reported). ``r2`` is the mean of the per-target R²
    (``R2_MULTIOUTPUT``, scikit-learn's default); ``r2_variance_weighted`` weights each
    target by its variance: with no constant target that is 1 - SS_res/SS_tot pooled over
    all targets, what ``r2`` used to report.
    """
    y = y.cpu().double()
    y = y.reshape(len(y), -1)
    pred = pred.double().reshape(y.shape)
    err = pred - y
    n = len(y)
    r2 = r2_per_target(pred, y) if n >= 2 else torch.full((y.shape[1],), float("nan"))
    ss_tot = ((y - y.mean(0)) ** 2).sum(0) if n else torch.zeros(y.shape[1])
    weights = ss_tot if bool((ss_tot > 0).any()) else torch.ones_like(ss_tot)
    per_target = [
        {"target": i, "mse": m, "mae": a, "r2": r, "rmse": m**0.5}
        for i, (m, a, r) in enumerate(
            zip((err**2).mean(0).tolist(), err.abs().mean(0).tolist(), r2.tolist())
        )
    ]
    return {
        "task": "regress",
        "samples": n,
        "loss": (err**2).mean().item(),
        "mse": (err**2).mean().item(),
        "mae": err.abs().mean().item(),
        "r2": r2.mean().item(),
        "r2_multioutput": R2_MULTIOUTPUT,
        "r2_variance_weighted": ((r2 * weights).sum() / weights.sum()).item(),
        "per_target": per_target if n else [],
        "rmse": (err**2).mean().sqrt().item(),
    }


def full_report(
    model: torch.nn.Module,
    split: Split,
    task: str,
    classes: tuple[str, ...],
    batch_size: int,
    top_k: int = 5,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report ``cnnkit eval`` prints and ``summary.json`` stores for the test split;
    a regression's predictions and targets go into ``keep`` when given (for the plot)."""
    if task == "segment":
        return segmentation_report(model, split, classes, batch_size)
    out = predict(model, split, batch_size)
    if task == "classify":
        return classification_report(out, split.y, classes, top_k)
    if keep is not None:
        keep.update(pred=out, true=split.y.cpu())
    return regression_report(out, split.y)
