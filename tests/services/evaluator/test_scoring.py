"""Live metrics agree with River's own metrics; snapshots are due on cadence with stable ids."""

from __future__ import annotations

import math

import pytest
from river import metrics, utils

from services.evaluator.scoring import LiveMetrics, Scoreboard, example_score, primary_value
from tests.services.evaluator.data import T0, config, rows, tree


def test_classification_metrics_match_river_on_real_predictions() -> None:
    cfg = config()
    model = tree(cfg, 0)
    data = rows(2, 800, seed=4)  # another concept: a mediocre model
    live = LiveMetrics(task="class", window=300)
    acc, f1 = metrics.Accuracy(), metrics.MacroF1()
    rolling = utils.Rolling(metrics.Accuracy, window_size=300)
    losses = []
    for x, y in data:
        p, proba = model.predict_one(x), model.predict_proba_one(x)
        live.update(y, p, proba)
        acc.update(y, p)
        f1.update(y, p)
        rolling.update(y, p)
        assert proba is not None
        losses.append(-math.log(min(max(proba[str(y)], 1e-15), 1.0)))
    values = live.values()
    assert values["accuracy"] == pytest.approx(acc.get())
    assert values["f1_macro"] == pytest.approx(f1.get())
    assert values["rolling_accuracy"] == pytest.approx(rolling.get())
    assert values["log_loss"] == pytest.approx(sum(losses) / len(losses))
    assert values["rolling_log_loss"] == pytest.approx(sum(losses[-300:]) / 300)
    assert 0.3 < values["accuracy"] < 0.7 and live.example_count == 800


def test_without_probabilities_there_is_no_log_loss() -> None:
    live = LiveMetrics(task="class", window=10)
    live.update(1, 1, None)
    assert set(live.values()) == {"accuracy", "rolling_accuracy", "f1_macro", "rolling_f1_macro"}


def test_regression_metrics() -> None:
    live = LiveMetrics(task="number", window=2)
    for y, p in [(1.0, 2.0), (2.0, 2.0), (3.0, 1.0)]:
        live.update(y, p, None)
    values = live.values()
    assert values["mae"] == pytest.approx(1.0)
    assert values["rolling_mae"] == pytest.approx(1.0)
    assert values["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert primary_value(values, "mae", rolling=True) == values["rolling_mae"]


@pytest.mark.parametrize(
    ("metric", "task", "y", "p", "proba", "expected"),
    [
        ("accuracy", "class", 1, 1, None, 1.0),
        ("accuracy", "class", 1, 0, None, 0.0),
        ("f1_macro", "class", "a", None, None, 0.0),
        ("log_loss", "class", 1, 1, {"1": 1.0}, 0.0),
        ("mae", "number", 2.0, 1.5, None, -0.5),
        ("rmse", "number", 2.0, 1.5, None, -0.25),
        ("r2", "number", 2.0, None, None, -4.0),
    ],
)
def test_example_score_is_higher_for_better(
    metric: str, task: str, y: object, p: object, proba: dict[str, float] | None, expected: float
) -> None:
    assert example_score(metric, task, y, p, proba) == pytest.approx(expected)  # type: ignore[arg-type]


def test_log_loss_without_probabilities_is_the_worst_score() -> None:
    assert example_score("log_loss", "class", 1, 1, None) == pytest.approx(math.log(1e-15))


def test_scoreboard_snapshots_every_n_with_stable_ids() -> None:
    board, again = Scoreboard(every=100), Scoreboard(every=100)
    data = rows(0, 250, seed=3)
    snaps = []
    for i, (_x, y) in enumerate(data):
        for b, out in ((board, snaps), (again, [])):
            s = b.record(
                "loans", "loans", 4, "champion", "class", 50, y, y if i % 2 else 1 - y, None, T0
            )
            if s is not None:
                out.append(s)
    assert [s.example_count for s in snaps] == [100, 200]
    first = snaps[0]
    assert first.source == "evaluator" and first.role == "champion" and first.version == 4
    assert first.values["accuracy"] == pytest.approx(0.5) and first.window == 50
    replay = again.snapshot("loans", 4, "champion", T0)
    assert replay is not None and replay.example_count == 250
    assert again.snapshot("loans", 5, "champion") is None
    assert board.get("loans", 4, "champion") is not None
    assert (
        board.forget("loans", keep={(5, "champion")}) == 1
        and board.get("loans", 4, "champion") is None
    )


def test_snapshot_ids_depend_on_version_role_and_count() -> None:
    a, b = Scoreboard(every=1), Scoreboard(every=1)
    sa = a.record("s", "s", 1, "champion", "class", 10, 1, 1, None, T0)
    sb = b.record("s", "s", 1, "champion", "class", 10, 0, 1, None, T0)
    sc = b.record("s", "s", 1, "challenger", "class", 10, 0, 1, None, T0)
    assert sa is not None and sb is not None and sc is not None
    assert sa.event_id == sb.event_id  # same position in the same series: a redelivery
    assert sc.event_id != sb.event_id
