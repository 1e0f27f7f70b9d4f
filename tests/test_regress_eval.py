"""Regression eval: RMSE beside MSE/MAE/R² (against scikit-learn on the model's own test
predictions), the per-target table, and --plot's predicted-vs-true panels (the figure's data,
titles and y = x line, then the PNG as PIL reads it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics

from cnnkit import plots
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe

DOTS = """\
data: {name: dots, task: regress, samples: 150, augment: [hflip]}
train: {epochs: 3, batch_size: 25, optimizer: adam, lr: 0.01, monitor: val_loss, device: cpu}
"""


def _rows():
    return [{"epoch": e, "lr": 0.01, "train_loss": 4 / e, "val_loss": 5 / e} for e in (1, 2, 3)]


@pytest.mark.parametrize("targets", [1, 3, 8])
def test_predicted_vs_true_panels_show_the_data_the_r2_and_y_equals_x(targets):
    g = np.random.default_rng(targets)
    true = g.normal(size=(40, targets)) * np.arange(1, targets + 1)
    pred = true + g.normal(scale=0.5, size=true.shape)
    r2 = metrics.r2_score(true, pred, multioutput="raw_values")
    fig = plots.regression_figure(_rows(), None, pred, true, list(r2))
    shown = min(targets, plots.PREDICTED_PANELS)
    scatter = [ax for ax in fig.axes if ax.get_xlabel() == "true"]
    assert len(scatter) == shown and len(fig.axes) == plots.curve_panels(_rows()) + shown
    for i, ax in enumerate(scatter):
        assert ax.get_title() == f"target {i}: R² {r2[i]:.4f}"
        (points,) = [c for c in ax.collections if c.get_gid() == "predictions"]
        np.testing.assert_allclose(points.get_offsets(), np.stack([true[:, i], pred[:, i]], 1))
        (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "y = x"]
        lo, hi = min(true[:, i].min(), pred[:, i].min()), max(true[:, i].max(), pred[:, i].max())
        np.testing.assert_allclose(line.get_xydata(), [[lo, lo], [hi, hi]])


def test_eval_plot_of_a_regression_run(tmp_path):
    """Train on dots (two targets), then eval --plot: the JSON says which panels were drawn,
    RMSE and per-target RMSE are sklearn's on the model's own outputs, the PNG has the
    figure's size, and the text view has the per-target table."""
    from cnnkit.train.data import load_data
    from cnnkit.train.evaluate import predict
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    recipe = tiny_recipe(tmp_path, extra=DOTS)
    recipe.write_text(recipe.read_text().replace("linear: 10", "linear: 2"))
    run = tmp_path / "run"
    r = run_cli("train", str(recipe), "--out", str(run), "--json")
    assert r.code == 0, r.err
    png = tmp_path / "eval.png"
    r = run_cli("eval", str(run), "--plot", str(png), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["plot"]["predicted_vs_true"] == {"panels": 2, "targets": 2}
    plan = plan_from_recipe(load_with_overrides(run / "recipe.yaml"), "test")
    model = plan.build()
    model.load_state_dict(torch.load(run / "best.pt", weights_only=True)["model"])
    test = load_data(plan.data, plan.input_shape).test
    yp, yt = predict(model, test, 64).double().numpy(), test.y.double().numpy()
    assert report["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(yt, yp)))
    per_target = metrics.root_mean_squared_error(yt, yp, multioutput="raw_values")
    assert [row["rmse"] for row in report["per_target"]] == pytest.approx(per_target)
    width = max(plots.CURVES_PANEL[0] * 3, plots.SCATTER_PANEL[0] * 2) * plots.DPI
    height = (plots.CURVES_PANEL[1] + plots.SCATTER_PANEL[1]) * plots.DPI
    assert Image.open(png).size == (round(width), round(height))
    text = run_cli("eval", str(run), "--plot", str(png))
    assert text.code == 0 and "RMSE" in text.out and "per target" in text.out
    assert "predicted vs true ->" in text.out
    csv = run_cli("eval", str(run), "--csv")
    assert csv.out.splitlines()[0].endswith(",rmse")


def test_classification_plot_is_unchanged(tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", str(tiny_recipe(tmp_path)), "--out", str(run)).code == 0
    r = run_cli("eval", str(run), "--plot", str(tmp_path / "c.png"), "--json")
    assert r.code == 0, r.err
    assert "predicted_vs_true" not in json.loads(r.out)["plot"]
