"""The promotion gate as pure functions: margins, fairness, no champion."""

from __future__ import annotations

from river import compose, linear_model, preprocessing

from services.trainer import gate
from services.trainer.gate import Scored, decide
from tests.services.trainer.support import NUMBERS, data


def test_a_candidate_worse_than_the_live_online_champion_is_not_promoted() -> None:
    # the online champion, scored prequentially on the holdout, against a batch candidate
    pairs = data(3000, before=3000)
    model = compose.Pipeline(
        compose.Select(*NUMBERS), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for x, y in pairs[:2000]:
        model.learn_one(dict(x), y)
    holdout = pairs[2000:]
    ys = [y for _, y in holdout]
    preds = gate.prequential(model, [x for x, _ in holdout], ys)
    champion = gate.score_predictions("online v4", "class", "accuracy", ys, preds, None)
    worse = Scored("ridge", {"accuracy": champion.metrics["accuracy"] - 0.02})

    decision = decide(
        metric="accuracy", champion=champion, candidates=[worse], margin=0.0, max_gap=1
    )

    assert decision.winner is None
    assert "does not beat the champion" in decision.verdict("ridge").reason
    assert "nothing promoted" in decision.summary


def test_the_margin_must_be_met_and_a_tie_is_no_win() -> None:
    champ = Scored("online v1", {"accuracy": 0.80})
    tie = Scored("a", {"accuracy": 0.80})
    small = Scored("b", {"accuracy": 0.805})
    assert (
        decide(metric="accuracy", champion=champ, candidates=[tie], margin=0, max_gap=1).winner
        is None
    )
    assert (
        decide(metric="accuracy", champion=champ, candidates=[small], margin=0.01, max_gap=1).winner
        is None
    )
    assert (
        decide(metric="accuracy", champion=champ, candidates=[small], margin=0.0, max_gap=1).winner
        == "b"
    )


def test_lower_is_better_metrics_win_downwards() -> None:
    champ = Scored("batch v2", {"mae": 2.0})
    better = Scored("hgb", {"mae": 1.5})
    worse = Scored("ridge", {"mae": 2.5})
    d = decide(metric="mae", champion=champ, candidates=[worse, better], margin=0.1, max_gap=1)
    assert d.winner == "hgb"
    assert not d.verdict("ridge").promoted


def test_a_candidate_widening_the_segment_gap_beyond_the_limit_is_refused_even_if_better() -> None:
    champ = Scored("online v3", {"accuracy": 0.80}, gap=0.04, segments={"low": 0.82, "high": 0.78})
    accurate_unfair = Scored(
        "random_forest", {"accuracy": 0.95}, gap=0.25, segments={"low": 0.99, "high": 0.74}
    )
    fair = Scored("logistic_regression", {"accuracy": 0.84}, gap=0.05)

    alone = decide(
        metric="accuracy", champion=champ, candidates=[accurate_unfair], margin=0, max_gap=0.1
    )
    both = decide(
        metric="accuracy", champion=champ, candidates=[accurate_unfair, fair], margin=0, max_gap=0.1
    )

    assert alone.winner is None
    assert "segment gap 0.250 exceeds the limit 0.100" in alone.verdict("random_forest").reason
    assert both.winner == "logistic_regression"


def test_a_candidate_may_narrow_a_gap_that_is_already_too_wide() -> None:
    champ = Scored("batch v1", {"accuracy": 0.80}, gap=0.30)
    narrower = Scored("hgb", {"accuracy": 0.85}, gap=0.20)
    d = decide(metric="accuracy", champion=champ, candidates=[narrower], margin=0, max_gap=0.1)
    assert d.winner == "hgb"


def test_without_a_champion_the_best_fair_candidate_wins() -> None:
    unfair = Scored("rf", {"accuracy": 0.99}, gap=0.5)
    fair_low = Scored("lr", {"accuracy": 0.70}, gap=0.01)
    fair_high = Scored("hgb", {"accuracy": 0.80}, gap=0.02)
    d = decide(
        metric="accuracy",
        champion=None,
        candidates=[unfair, fair_low, fair_high],
        margin=0.5,
        max_gap=0.1,
    )
    assert d.winner == "hgb"
    assert "no champion" in d.summary
    assert "not the best" in d.verdict("lr").reason


def test_segment_report_ignores_tiny_segments_for_the_gap() -> None:
    y = [1] * 30 + [0] * 3
    pred = [1] * 30 + [1] * 3
    seg = ["a"] * 30 + ["b"] * 3
    per, gap = gate.segment_report("class", "accuracy", y, pred, seg, min_size=10)
    assert per == {"a": 1.0, "b": 0.0}
    assert gap is None
