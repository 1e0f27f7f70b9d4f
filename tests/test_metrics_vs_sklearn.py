"""cnnkit eval's metrics against ``sklearn.metrics`` as the oracle, on random predictions
that include classes absent from the truth, from the predictions, and from both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn import metrics

from cnnkit.train.evaluate import classification_report, regression_report
from tests.clitools import run_cli
from tests.trainkit import tiny_recipe


def _logits(seed: int, n: int, k: int, never_predicted: list[int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64).float()
    logits[:, never_predicted] -= 10.0  # the model never picks these classes
    return logits


CASES = [  # (seed, samples, classes, labels the truth uses, classes never predicted)
    (0, 200, 10, range(10), []),
    (1, 150, 10, range(0, 10, 2), [1, 9]),  # 1 and 9: in neither truth nor predictions
    (2, 60, 7, [0, 1, 2], [2, 3, 4]),  # 2: true but never predicted; 5, 6: predicted only
    (3, 40, 3, [0, 2], [1]),
    (4, 30, 2, [0, 1], []),
]


@pytest.mark.parametrize(("seed", "n", "k", "truth", "never"), CASES)
def test_classification_metrics_match_sklearn(seed, n, k, truth, never):
    logits = _logits(seed, n, k, never)
    g = torch.Generator().manual_seed(100 + seed)
    truth = torch.tensor(list(truth))
    y = truth[torch.randint(0, len(truth), (n,), generator=g)]
    report = classification_report(logits, y, tuple(f"c{i}" for i in range(k)), top_k=3)
    yt, yp, scores = y.numpy(), logits.argmax(1).numpy(), logits.double().numpy()
    labels = list(range(k))

    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(yt, yp))
    top = min(3, k)
    assert report["top_k"] == top
    if k > 2:  # sklearn's binary top-k takes 1-D scores; with 2 classes top-2 is trivially 1
        expected = metrics.top_k_accuracy_score(yt, scores, k=top, labels=labels)
        assert report["top_k_accuracy"] == pytest.approx(expected)
    probs = torch.softmax(logits.double(), 1).numpy()
    assert report["loss"] == pytest.approx(metrics.log_loss(yt, probs, labels=labels), rel=1e-5)
    assert report["confusion"] == metrics.confusion_matrix(yt, yp, labels=labels).tolist()

    p, r, f, s = metrics.precision_recall_fscore_support(
        yt, yp, labels=labels, average=None, zero_division=0
    )
    rows = report["per_class"]
    assert [row["precision"] for row in rows] == pytest.approx(p)
    assert [row["recall"] for row in rows] == pytest.approx(r)
    assert [row["f1"] for row in rows] == pytest.approx(f)
    assert [row["support"] for row in rows] == s.tolist()

    # Macro over sklearn's default labels: those in the truth or the predictions.
    mp, mr, mf, _ = metrics.precision_recall_fscore_support(
        yt, yp, average="macro", zero_division=0
    )
    assert report["macro_precision"] == pytest.approx(mp)
    assert report["macro_recall"] == pytest.approx(mr)
    assert report["macro_f1"] == pytest.approx(mf)
    weighted = metrics.f1_score(yt, yp, labels=labels, average="weighted", zero_division=0)
    assert report["weighted_f1"] == pytest.approx(weighted)
    assert report["averaging"]["macro_classes"] == len(np.union1d(yt, yp))
    assert report["averaging"]["zero_division"] == 0


def _regression(seed: int, n: int, t: int, constant: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 2, t, dtype=torch.float64)  # targets of very different spread
    y = torch.randn(n, t, generator=g, dtype=torch.float64) * scales
    pred = y + 0.3 * scales * torch.randn(n, t, generator=g, dtype=torch.float64)
    if constant:
        y[:, 0] = 2.5  # a target that never varies: sklearn's force_finite rule applies
    return pred.float(), y.float()


@pytest.mark.parametrize(
    ("seed", "n", "t", "constant"),
    [(0, 100, 1, False), (1, 80, 3, False), (2, 50, 4, True), (3, 2, 2, False)],
)
def test_regression_metrics_match_sklearn(seed, n, t, constant):
    pred, y = _regression(seed, n, t, constant)
    report = regression_report(pred, y)
    yt, yp = y.double().numpy(), pred.double().numpy()
    assert report["mse"] == pytest.approx(metrics.mean_squared_error(yt, yp))
    assert report["loss"] == pytest.approx(metrics.mean_squared_error(yt, yp))
    assert report["mae"] == pytest.approx(metrics.mean_absolute_error(yt, yp))
    assert report["r2_multioutput"] == "uniform_average"
    assert report["r2"] == pytest.approx(metrics.r2_score(yt, yp))
    weighted = metrics.r2_score(yt, yp, multioutput="variance_weighted")
    assert report["r2_variance_weighted"] == pytest.approx(weighted)
    raw = metrics.r2_score(yt, yp, multioutput="raw_values")
    assert [row["r2"] for row in report["per_target"]] == pytest.approx(raw)
    column_mse = metrics.mean_squared_error(yt, yp, multioutput="raw_values")
    assert [row["mse"] for row in report["per_target"]] == pytest.approx(column_mse)
    assert report["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(yt, yp)))
    column_rmse = metrics.root_mean_squared_error(yt, yp, multioutput="raw_values")
    assert [row["rmse"] for row in report["per_target"]] == pytest.approx(column_rmse)
    column_mae = metrics.mean_absolute_error(yt, yp, multioutput="raw_values")
    assert [row["mae"] for row in report["per_target"]] == pytest.approx(column_mae)


def test_constant_target_is_one_when_predicted_exactly():
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    pred = torch.tensor([[1.0, 0.1], [1.0, 0.9], [1.0, 2.2]])
    report = regression_report(pred, y)
    assert report["r2"] == pytest.approx(metrics.r2_score(y.numpy(), pred.numpy()))
    assert report["per_target"][0]["r2"] == 1.0


def test_eval_cli_reports_what_sklearn_computes_from_the_model(tmp_path):
    """The whole path (checkpoint, test split, predictions) against sklearn on the model's
    own test-split outputs, and the averaging named in the JSON and the table."""
    from cnnkit.train.data import load_data
    from cnnkit.train.evaluate import predict
    from cnnkit.train.plan import load_with_overrides, plan_from_recipe

    recipe = tiny_recipe(tmp_path)
    r = run_cli("train", str(recipe), "--out", str(tmp_path / "r"), "--json")
    assert r.code == 0, r.err
    r = run_cli("eval", str(tmp_path / "r"), "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    plan = plan_from_recipe(load_with_overrides(tmp_path / "r/recipe.yaml"), "test")
    model = plan.build()
    model.load_state_dict(torch.load(tmp_path / "r/best.pt", weights_only=True)["model"])
    test = load_data(plan.data, plan.input_shape).test
    yp = predict(model, test, 64).argmax(1).numpy()
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(test.y.numpy(), yp))
    macro = metrics.f1_score(test.y.numpy(), yp, average="macro", zero_division=0)
    assert report["macro_f1"] == pytest.approx(macro)
    assert report["averaging"]["macro"].startswith("classes present")
    table = run_cli("eval", str(tmp_path / "r"))
    assert table.code == 0 and "macro F1" in table.out and "classes in truth or" in table.out
