"""cnnkit.plots: what the pictures say, checked on the matplotlib figures before they are
saved (axis limits in input pixels, colour bar, legend, best epoch, log scale, which panels),
the PNGs as PIL decodes them, and the one-line exit 2 of --erf and --plot without matplotlib."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnkit import plots
from cnnkit.errors import InputError

BOX = ((63, 161), (63, 161))  # ResNet-18 layer2.1.add's centre unit on 224 x 224
MASS = ((82, 142), (82, 142))


def _gaussian(h: int = 224, w: int = 224) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return 3.0 * np.exp(-((y - h // 2) ** 2 + (x - w // 2) ** 2) / 400.0)


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def test_erf_axes_are_input_pixels_around_the_theoretical_field():
    fig = plots.erf_figure(_gaussian(), BOX, MASS)
    ax = fig.axes[0]
    margin = 99 / 5  # a fifth of the field on each side, by hand
    assert ax.get_xlim() == pytest.approx((62.5 - margin, 161.5 + margin))
    assert ax.get_ylim() == pytest.approx((161.5 + margin, 62.5 - margin))  # row 0 at the top
    (image,) = ax.get_images()
    assert image.get_extent() == pytest.approx((-0.5, 223.5, 223.5, -0.5))  # pixel i at i
    assert float(np.max(image.get_array())) == pytest.approx(1.0)  # relative to the peak
    theory = next(p for p in ax.patches if "theoretical" in p.get_label())
    assert (theory.get_x(), theory.get_y()) == (62.5, 62.5)
    assert (theory.get_width(), theory.get_height()) == (99, 99)
    assert _legend(ax) == [
        "theoretical receptive field 99 × 99",
        "95% of the gradient mass 61 × 61",
    ]


def test_erf_has_a_colour_bar_that_says_what_it_shows():
    fig = plots.erf_figure(_gaussian(32, 32), ((0, 31), (0, 31)))
    assert len(fig.axes) == 2  # the map and its colour bar
    bar = fig.axes[1]
    assert "∂ unit / ∂ input pixel" in bar.get_ylabel()
    assert bar.get_ylim() == pytest.approx((0.0, 1.0))


def test_erf_view_stays_inside_the_input_when_the_field_exceeds_it():
    fig = plots.erf_figure(_gaussian(20, 30), ((-40, 50), (-5, 10)))
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((19.5, -0.5))
    assert ax.get_xlim() == pytest.approx((-0.5, 10.5 + 16 / 5))
    no_box = plots.erf_figure(_gaussian(20, 30), None)
    assert no_box.axes[0].get_xlim() == pytest.approx((-0.5, 29.5))
    assert no_box.axes[0].get_legend() is None


def test_erf_rejects_a_map_that_is_not_2d():
    with pytest.raises(InputError, match="2-D"):
        plots.erf_figure(np.zeros((2, 3, 4)), None)


def test_erf_png_has_the_figure_size_and_no_temporary_left(tmp_path):
    from PIL import Image

    path = tmp_path / "img" / "erf.png"
    plots.save_erf(_gaussian(), path, BOX, MASS)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (640, 560)
        image.load()
    assert [p.name for p in path.parent.iterdir()] == ["erf.png"]


def _classify_rows(n: int = 6) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "lr": 0.1 * (1 - (e - 1) / n),
            "train_loss": 2.0 / e,
            "train_accuracy": 0.5 + e / 20,
            "val_loss": 1.5 / e + (0.2 if e > 4 else 0),
            "val_accuracy": 0.4 + e / 25,
            "time_s": 1.0,
            "images_per_s": 100.0,
        }
        for e in range(1, n + 1)
    ]


def _regress_rows() -> list[dict[str, float]]:
    return [
        {"epoch": e, "lr": 0.01, "train_loss": 4.0 / e, "val_loss": 9.0 / e, "time_s": 1.0}
        for e in range(1, 5)
    ]


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_curves_show_loss_accuracy_and_learning_rate():
    rows = _classify_rows()
    fig = plots.curves_figure(rows)
    assert _titles(fig) == ["loss", "accuracy", "learning rate"]
    loss, accuracy, lr = fig.axes
    assert loss.get_yscale() == "linear"
    assert _legend(loss) == ["train", "val"]
    (line,) = [ln for ln in lr.get_lines() if ln.get_label() == "lr"]
    assert list(line.get_ydata()) == pytest.approx([r["lr"] for r in rows])
    val = next(ln for ln in accuracy.get_lines() if ln.get_label() == "val")
    assert list(val.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(val.get_ydata()) == pytest.approx([r["val_accuracy"] for r in rows])


def test_curves_mark_the_best_epoch_in_every_panel():
    rows = _classify_rows()
    best = {"epoch": 4, "metric": "val_loss", "value": rows[3]["val_loss"]}
    fig = plots.curves_figure(rows, best)
    for ax in fig.axes:
        (marker,) = [ln for ln in ax.get_lines() if ln.get_gid() == "best-epoch"]
        assert list(marker.get_xdata()) == [4, 4]
    stars = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "best"]
    assert len(stars) == 1 and stars[0].axes is fig.axes[0]  # on the monitored curve
    assert list(stars[0].get_xdata()) == [4]
    assert list(stars[0].get_ydata()) == pytest.approx([1.5 / 4])
    assert "val_loss 0.375 (monitored)" in _legend(fig.axes[0])
    assert "best epoch 4 (best.pt)" in _legend(fig.axes[2])


def test_curves_draw_the_loss_on_a_log_scale_when_asked():
    fig = plots.curves_figure(_classify_rows(), log_loss=True)
    assert fig.axes[0].get_yscale() == "log"
    assert fig.axes[1].get_yscale() == "linear"
    assert "log scale" in fig.axes[0].get_ylabel()


def test_regression_curves_show_their_own_metrics_not_accuracy():
    rows = _regress_rows()
    best = {"epoch": 4, "metric": "val_loss", "value": 9.0 / 4}
    fig = plots.curves_figure(rows, best)
    assert _titles(fig) == ["loss", "RMSE", "learning rate"]
    assert not [ax for ax in fig.axes if "accuracy" in (ax.get_title() + ax.get_ylabel())]
    assert fig.axes[0].get_ylabel() == "MSE"
    val = next(ln for ln in fig.axes[1].get_lines() if ln.get_label() == "val")
    assert list(val.get_ydata()) == pytest.approx(np.sqrt([9.0, 4.5, 3.0, 2.25]))
    stars = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "best"]
    assert [s.axes.get_title() for s in stars] == ["loss"]


def test_regression_mae_gets_a_panel_when_logged():
    rows = [{**r, "val_mae": 1.0 / r["epoch"]} for r in _regress_rows()]
    assert _titles(plots.curves_figure(rows)) == ["loss", "RMSE", "MAE", "learning rate"]


def test_old_metrics_without_lr_and_without_val(tmp_path):
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": e / 4} for e in range(1, 4)]
    fig = plots.curves_figure(rows)
    assert _titles(fig) == ["loss", "accuracy"]
    assert _legend(fig.axes[0]) == ["train"]


def _run_folder(tmp_path: Path, rows: list[dict[str, float]], best: dict | None) -> Path:
    from cnnkit.train.runs import csv_text

    (tmp_path / "metrics.csv").write_text(csv_text(rows), encoding="utf-8")
    if best is not None:
        summary = {"status": "completed", "best": best}
        (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return tmp_path / "metrics.csv"


def test_read_metrics_and_best_from_a_run_folder(tmp_path):
    rows = _classify_rows(3)
    metrics = _run_folder(tmp_path, rows, {"epoch": 2, "metric": "val_accuracy", "value": 0.48})
    got = plots.read_metrics(metrics)
    assert len(got) == 3 and all(g == pytest.approx(r) for g, r in zip(got, rows))
    assert plots.read_best(tmp_path / "summary.json")["epoch"] == 2
    assert plots.read_best(tmp_path / "absent.json") is None
    (tmp_path / "empty.csv").write_text("epoch,train_loss\n", encoding="utf-8")
    with pytest.raises(InputError, match="no epochs"):
        plots.read_metrics(tmp_path / "empty.csv")


def test_a_gap_in_a_column_is_nan_not_an_error(tmp_path):
    text = "epoch,lr,train_loss,train_accuracy,val_loss\n1,0.1,1.0,0.5,\n2,0.1,0.5,0.7,0.6\n"
    (tmp_path / "metrics.csv").write_text(text, encoding="utf-8")
    rows = plots.read_metrics(tmp_path / "metrics.csv")
    assert math.isnan(rows[0]["val_loss"]) and rows[1]["val_loss"] == 0.6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epoch,train_loss\n1,abc\n", "metrics.csv:2: train_loss is not a number ('abc')"),
        ("epoch,train_loss\n1,0.5,7\n", "metrics.csv:2: the row does not fit the header"),
        ("epoch,train_loss\n1\n", "metrics.csv:2: the row does not fit the header"),
        ("epoch,train_loss\n,0.5\n", "metrics.csv:2: the epoch is missing"),
        ("step,train_loss\n1,0.5\n", "no epoch column"),
    ],
)
def test_a_damaged_metrics_file_is_one_error_naming_the_cell(tmp_path, text, message):
    (tmp_path / "metrics.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        plots.read_metrics(tmp_path / "metrics.csv")
    assert message in str(err.value)


def test_a_binary_metrics_file_is_bad_input(tmp_path):
    (tmp_path / "metrics.csv").write_bytes(b"epoch\n\xff\xfe\x00\n")
    with pytest.raises(InputError, match="not a readable CSV"):
        plots.read_metrics(tmp_path / "metrics.csv")


def test_curves_png_has_the_figure_size(tmp_path):
    from PIL import Image

    metrics = _run_folder(tmp_path, _classify_rows(), {"epoch": 3, "metric": "val_accuracy"})
    out = tmp_path / "curves.png"
    plots.save_curves(metrics, out, log_loss=True)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1350, 380)
        image.load()


NO_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # import matplotlib -> ImportError
from cnnkit.cli.app import main
main(sys.argv[1:])
"""


def _without_matplotlib(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("eval", "no-such-run", "--plot", "curves.png"), "--plot"),
        (("rf", "no-such-recipe", "--erf", "erf.png"), "--erf"),
    ],
)
def test_without_matplotlib_a_picture_request_is_one_line_and_exit_2(tmp_path, args, option):
    done = _without_matplotlib(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    # before anything else is looked at: the missing target is not what it reports
    assert done.stderr == f"error: {option} needs matplotlib: pip install 'cnnkit[plots]'\n"
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_everything_else_works(tmp_path):
    done = _without_matplotlib("rf", "--layers", "conv k=3; conv k=3", "--input", "8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "receptive field 5" in done.stdout


REGRESS = """\
data: {name: synthetic, task: regress, samples: 200, val: 0.2}
train: {epochs: 3, batch_size: 20, optimizer: adam, lr: 0.01, device: cpu}
"""


def test_eval_plot_of_a_regression_run(tmp_path, monkeypatch):
    """The real files of a trained regression run: MSE, RMSE and lr panels, no accuracy, the
    star on the loss at summary.json's best epoch; the figure is caught before saving."""
    from tests.clitools import run_cli
    from tests.trainkit import summary, tiny_recipe

    run = tmp_path / "r"
    recipe = tiny_recipe(tmp_path, extra=REGRESS)
    r = run_cli("train", str(recipe), "--out", str(run), "--set", "model.layers[5].linear=1")
    assert r.code == 0, r.err
    drawn = []
    monkeypatch.setattr(plots, "save_png", lambda figure, path: drawn.append((figure, path)))
    r = run_cli("eval", str(run), "--plot", str(tmp_path / "c.png"), "--log-loss")
    assert r.code == 0, r.err
    ((fig, path),) = drawn
    assert Path(path) == tmp_path / "c.png"
    # the curves, then one predicted-vs-true panel for the one target (test_regress_eval.py)
    assert _titles(fig)[:3] == ["loss", "RMSE", "learning rate"]
    assert len(fig.axes) == 4 and _titles(fig)[3].startswith("target 0: R² ")
    assert fig.axes[0].get_yscale() == "log"
    import pandas as pd

    metrics = pd.read_csv(run / "metrics.csv")
    assert "train_accuracy" not in metrics
    val = next(ln for ln in fig.axes[1].get_lines() if ln.get_label() == "val")
    assert list(val.get_ydata()) == pytest.approx(np.sqrt(metrics["val_loss"]).tolist())
    best = summary(run)["best"]
    assert best["metric"] == "val_loss"
    (star,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "best"]
    assert list(star.get_xdata()) == [best["epoch"]]
    assert list(star.get_ydata()) == pytest.approx([best["value"]])
