"""How ``cnnkit eval`` and ``cnnkit train`` show a segmentation report (``task: segment``)."""

from __future__ import annotations

from typing import Any


def segment_line(report: dict[str, Any]) -> str:
    """Pixel accuracy, mIoU and mean Dice on one line, with what the means average over."""
    averaging = report["averaging"]
    return (
        f"loss {report['loss']:.4f}  pixel accuracy {report['pixel_accuracy']:.2%}  "
        f"mIoU {report['miou']:.4f}  mean Dice {report['mean_dice']:.4f} "
        f"(means over the {averaging['macro_classes']} classes in truth or predictions; "
        f"{report['pixels']:,} pixels scored, {report['ignored']:,} ignored)"
    )


def render_segment(out: Any, report: dict[str, Any]) -> None:
    """The line, then per-class IoU/Dice and the pixel confusion matrix as tables."""
    from rich.table import Table

    from cnnkit.cli.output import print_confusion, print_table

    out.print(segment_line(report), markup=False)
    per_class = Table(title="per class", title_justify="left")
    for name in ("class", "IoU", "Dice", "pixels", "predicted"):
        per_class.add_column(name, justify="right")
    for row in report["per_class"]:
        per_class.add_row(
            row["class"],
            f"{row['iou']:.3f}",
            f"{row['dice']:.3f}",
            str(row["support"]),
            str(row["predicted"]),
        )
    print_table(out, per_class)
    print_confusion(out, report, "pixel confusion")


def segment_csv(report: dict[str, Any]) -> str:
    """Per-class rows (IoU, Dice, pixels) beside the confusion matrix's rows."""
    import pandas as pd

    table = pd.DataFrame(report["per_class"])
    names = [f"pred_{row['class']}" for row in report["per_class"]]
    confusion = pd.DataFrame(report["confusion"], columns=names)
    return pd.concat([table, confusion], axis=1).to_csv(index=False)
