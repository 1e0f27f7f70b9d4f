"""Every picture cnnkit draws: the effective receptive field, the training curves, and a
regression's predicted-vs-true panels.

matplotlib is an optional extra (``pip install 'cnnkit[plots]'``). It is imported inside the
functions, so nothing else in cnnkit needs it, and a command asked for a picture without it
(``cnnkit rf --erf``, ``cnnkit eval --plot``) stops with one line before doing any work
(``needs_matplotlib``). Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg
canvas, never pyplot: no global state, no GUI backend, nothing left open between calls. The
``*_figure`` functions return the figure (what the tests look at); ``save_png`` writes it
atomically, so a reader never sees half a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.errors import InputError, MissingDependencyError

Box = tuple[tuple[int, int], ...]  # (first, last) input position per axis, inclusive
INSTALL = "pip install 'cnnkit[plots]'"
DPI = 100
ERF_SIZE = (6.4, 5.6)  # inches: 640 x 560 pixels
CURVES_PANEL = (4.5, 3.8)  # inches per panel
TRAIN, VAL, BEST = "tab:blue", "tab:orange", "tab:green"


def require_matplotlib(option: str) -> None:
    """Raise a one-line ``MissingDependencyError`` (exit 2) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"{option} needs matplotlib: {INSTALL}") from None


def needs_matplotlib(option: str) -> Callable[[Any], Any]:
    """A Typer option callback: the check runs while the command line is parsed, so a
    missing matplotlib is reported before any model is built or evaluated."""

    def check(value: Any) -> Any:
        if value is not None and value is not False:
            require_matplotlib(option)
        return value

    return check


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: str | Path) -> None:
    """Write ``figure`` as a PNG of exactly its size in pixels, replacing ``path`` atomically."""
    from cnnkit.atomic import atomic_open

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=DPI)


# -- the effective receptive field ----------------------------------------------------------


def _rectangle(box: Box, **style: Any) -> Any:
    """A box of input positions: pixel i covers [i - 0.5, i + 0.5]."""
    from matplotlib.patches import Rectangle

    (y0, y1), (x0, x1) = box
    return Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, **style)


def _view(box: Box | None, shape: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """Axis limits (rows, columns) in input pixels: the theoretical field and a margin of a
    fifth of its size, inside the input; the whole input when there is no field."""
    limits = []
    for axis, n in enumerate(shape):
        low, high = -0.5, n - 0.5
        if box is not None:
            first, last = box[axis]
            margin = (last - first + 1) / 5
            low, high = max(low, first - 0.5 - margin), min(high, last + 0.5 + margin)
        limits.append((low, high))
    return tuple(limits)


def _size(box: Box) -> str:
    return " × ".join(str(b - a + 1) for a, b in box)


def erf_figure(values: Any, box: Box | None, mass: Box | None = None) -> Any:
    """The ERF heat map over input pixels (row 0 at the top), its colour bar, and in the
    legend the theoretical receptive field's box and the box holding 95% of the mass.

    ``values`` is a 2-D array over the whole input (a NumPy array or anything
    ``numpy.asarray`` takes); it is shown relative to its peak on a square-root colour scale,
    since the ERF is sharply peaked and a linear scale hides its Gaussian-like tail.
    """
    import numpy as np
    from matplotlib.colors import PowerNorm

    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise InputError(f"the effective receptive field map must be 2-D, got {v.ndim}-D")
    peak = float(v.max()) if v.size else 0.0
    v = v / peak if peak > 0 else v
    figure = _figure(*ERF_SIZE)
    ax = figure.add_subplot()
    h, w = v.shape
    image = ax.imshow(
        v,
        cmap="inferno",
        norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0),
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="nearest",
    )
    bar = figure.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label("|∂ unit / ∂ input pixel| relative to its peak\n(mean over random inputs)")
    if box is not None:
        theory = _rectangle(box, edgecolor="cyan", linewidth=1.5)
        ax.add_patch(theory).set_label(f"theoretical receptive field {_size(box)}")
    if mass is not None:
        held = _rectangle(mass, edgecolor="lime", linewidth=1.2, linestyle="--")
        ax.add_patch(held).set_label(f"95% of the gradient mass {_size(mass)}")
    (top, bottom), (left, right) = _view(box, (h, w))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)  # row 0 at the top, as in the image
    ax.set_xlabel("input column (pixels)")
    ax.set_ylabel("input row (pixels)")
    ax.set_title("effective receptive field of the centre unit")
    if box is not None or mass is not None:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize="small")
    return figure


def save_erf(values: Any, path: str | Path, box: Box | None, mass: Box | None = None) -> None:
    """Draw ``erf_figure`` into the PNG ``path``."""
    save_png(erf_figure(values, box, mass), path)


# -- training curves ------------------------------------------------------------------------


def read_metrics(metrics: str | Path) -> list[dict[str, float]]:
    """``metrics.csv`` as one dict of numbers per epoch. An empty cell (a column only some
    epochs have) is NaN, which matplotlib leaves as a gap; anything else that is not a number
    is an error naming the cell, never a curve drawn from a guess."""
    import csv

    try:
        with open(metrics, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{metrics}: not a readable CSV file ({err})") from None
    if not rows:
        raise InputError(f"{metrics}: no epochs recorded yet")
    if "epoch" not in rows[0]:
        raise InputError(f"{metrics}: no epoch column; not a cnnkit metrics.csv")
    parsed = []
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise InputError(f"{metrics}:{line}: the row does not fit the header")
        numbers = {}
        for key, text in row.items():
            try:
                numbers[key] = float(text) if text != "" else math.nan
            except ValueError:
                raise InputError(f"{metrics}:{line}: {key} is not a number ({text!r})") from None
        if math.isnan(numbers["epoch"]):
            raise InputError(f"{metrics}:{line}: the epoch is missing")
        parsed.append(numbers)
    return parsed


def read_best(summary: str | Path) -> dict[str, Any] | None:
    """The run's best epoch and monitored metric from ``summary.json`` (None without one:
    the monitor is in the recipe, and a guess could mark the wrong epoch)."""
    import json

    try:
        best = json.loads(Path(summary).read_text(encoding="utf-8")).get("best") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(best.get("epoch"), int) or not isinstance(best.get("metric"), str):
        return None
    return best


def _series(rows: Sequence[Mapping[str, float]], key: str) -> list[float] | None:
    if not any(key in r and not math.isnan(r[key]) for r in rows):
        return None
    return [r.get(key, math.nan) for r in rows]


@dataclass(frozen=True)
class Panel:
    """One chart of the training curves: ``key`` is the metrics.csv suffix it plots
    (``loss`` -> train_loss, val_loss), None for a derived metric."""

    title: str
    ylabel: str
    key: str | None
    series: dict[str, list[float]]


def _panels(rows: Sequence[Mapping[str, float]]) -> list[Panel]:
    """The panels besides the learning rate. Classification shows accuracy; regression (no
    accuracy column) its RMSE, the square root of its MSE loss, in the target's units, and
    its MAE when the run logged one."""

    def pair(key: str) -> dict[str, list[float]]:
        found = {n: _series(rows, f"{n}_{key}") for n in ("train", "val")}
        return {n: v for n, v in found.items() if v is not None}

    loss = pair("loss")
    if _series(rows, "train_accuracy") is not None:
        return [
            Panel("loss", "cross-entropy", "loss", loss),
            Panel("accuracy", "accuracy", "accuracy", pair("accuracy")),
        ]
    rmse = {n: [math.sqrt(x) for x in v] for n, v in loss.items()}
    panels = [
        Panel("loss", "MSE", "loss", loss),
        Panel("RMSE", "RMSE (√MSE, target units)", None, rmse),
    ]
    if pair("mae"):
        panels.append(Panel("MAE", "MAE (target units)", "mae", pair("mae")))
    return panels


def _best_line(ax: Any, epoch: int) -> None:
    label = f"best epoch {epoch} (best.pt)"
    ax.axvline(epoch, color=BEST, linestyle=":", linewidth=1.2, label=label, gid="best-epoch")


def _mark_best(ax: Any, epochs: list[float], panel: Panel, best: dict[str, Any] | None) -> None:
    """A dotted line at the best epoch; a star on the monitored curve, with its value."""
    if best is None:
        return
    epoch = best["epoch"]
    _best_line(ax, epoch)
    for name, line in panel.series.items():
        if panel.key is not None and best["metric"] == f"{name}_{panel.key}" and epoch in epochs:
            value = line[epochs.index(epoch)]
            label = f"{best['metric']} {value:.4g} (monitored)"
            ax.plot([epoch], [value], "*", color=BEST, markersize=12, label=label, gid="best")


def _draw(ax: Any, epochs: list[float], panel: Panel, best: dict[str, Any] | None) -> None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    colours = {"train": TRAIN, "val": VAL}
    for name, line in panel.series.items():
        ax.plot(epochs, line, "o-", color=colours[name], markersize=3, label=name)
    _mark_best(ax, epochs, panel, best)
    if panel.key == "accuracy":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title=panel.title, xlabel="epoch", ylabel=panel.ylabel)
    ax.grid(alpha=0.3)
    if panel.series:
        ax.legend(fontsize="small")


def _draw_lr(ax: Any, epochs: list[float], lr: list[float], best: dict[str, Any] | None) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.plot(epochs, lr, "o-", color="tab:purple", markersize=3, label="lr")
    if best is not None:
        _best_line(ax, best["epoch"])
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="learning rate", xlabel="epoch", ylabel="learning rate at the epoch's start")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def curves_figure(
    rows: Sequence[Mapping[str, float]], best: dict[str, Any] | None = None, log_loss: bool = False
) -> Any:
    """Loss, accuracy (or the regression metrics) and the learning rate per epoch, one panel
    each; the best epoch (``summary.json``'s ``best``) is a dotted line in every panel and a
    star on the monitored curve; ``log_loss`` draws the loss on a log scale."""
    figure = _figure(CURVES_PANEL[0] * curve_panels(rows), CURVES_PANEL[1])
    draw_curves(figure, rows, best, log_loss)
    return figure


def curve_panels(rows: Sequence[Mapping[str, float]]) -> int:
    """How many panels ``curves_figure`` draws for these rows."""
    return len(_panels(rows)) + (_series(rows, "lr") is not None)


def draw_curves(
    figure: Any, rows: Sequence[Mapping[str, float]], best: dict[str, Any] | None, log_loss: bool
) -> None:
    """``curves_figure``'s panels, in one row of ``figure`` (a figure or a subfigure)."""
    epochs = [r["epoch"] for r in rows]
    panels = _panels(rows)
    lr = _series(rows, "lr")
    axes = figure.subplots(1, curve_panels(rows), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw(ax, epochs, panel, best)
    if log_loss:
        axes[0].set_yscale("log")
        axes[0].set_ylabel(f"{axes[0].get_ylabel()} (log scale)")
    if lr is not None:
        _draw_lr(axes[-1], epochs, lr, best)


def save_curves(metrics: str | Path, path: str | Path, log_loss: bool = False) -> None:
    """Draw a run's ``metrics.csv`` (and its best epoch, from ``summary.json`` beside it)."""
    rows = read_metrics(metrics)
    best = read_best(Path(metrics).with_name("summary.json"))
    save_png(curves_figure(rows, best, log_loss), path)


PREDICTED_PANELS = 6  # predicted-vs-true panels at most: the first targets (the JSON says so)
SCATTER_PANEL = (3.8, 3.6)  # inches per predicted-vs-true panel


def predicted_panels(targets: int) -> int:
    """How many predicted-vs-true panels a regression of ``targets`` targets gets."""
    return min(targets, PREDICTED_PANELS)


def draw_predicted(figure: Any, pred: Any, true: Any, r2: Sequence[float]) -> None:
    """One panel per target (up to ``PREDICTED_PANELS``): each sample's prediction against
    its true value, the y = x line a perfect model would sit on, and the target's R² (the
    eval report's, scikit-learn's ``r2_score``) in the title."""
    import numpy as np

    pred, true = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    axes = figure.subplots(1, predicted_panels(true.shape[1]), squeeze=False)[0]
    for i, ax in enumerate(axes):
        t, p = true[:, i], pred[:, i]
        ax.scatter(t, p, s=9, alpha=0.5, color=VAL, linewidths=0, gid="predictions")
        both = np.concatenate([t, p])
        lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
        ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1, label="y = x")
        ax.set(title=f"target {i}: R² {r2[i]:.4f}", xlabel="true", ylabel="predicted")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")


def predicted_figure(pred: Any, true: Any, r2: Sequence[float]) -> Any:
    """The predicted-vs-true panels alone."""
    figure = _figure(SCATTER_PANEL[0] * predicted_panels(len(r2)), SCATTER_PANEL[1])
    draw_predicted(figure, pred, true, r2)
    return figure


def regression_figure(
    rows: Sequence[Mapping[str, float]],
    best: dict[str, Any] | None,
    pred: Any,
    true: Any,
    r2: Sequence[float],
    log_loss: bool = False,
) -> Any:
    """``cnnkit eval --plot`` of a regression run: the training curves above, predicted vs
    true on the evaluated split below."""
    curves, scatter = curve_panels(rows), predicted_panels(len(r2))
    width = max(CURVES_PANEL[0] * curves, SCATTER_PANEL[0] * scatter)
    figure = _figure(width, CURVES_PANEL[1] + SCATTER_PANEL[1])
    top, bottom = figure.subfigures(2, 1, height_ratios=[CURVES_PANEL[1], SCATTER_PANEL[1]])
    draw_curves(top, rows, best, log_loss)
    draw_predicted(bottom, pred, true, r2)
    return figure


def save_regression(
    metrics: str | Path, path: str | Path, pred: Any, true: Any, r2: Sequence[float], **kw: Any
) -> None:
    """Draw ``regression_figure`` for a run's ``metrics.csv`` and the given predictions."""
    rows = read_metrics(metrics)
    best = read_best(Path(metrics).with_name("summary.json"))
    save_png(regression_figure(rows, best, pred, true, r2, **kw), path)
