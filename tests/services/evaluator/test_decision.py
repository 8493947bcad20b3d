"""The promotion test and the rollback rule, on paired per-example scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.evaluator.decision import (
    Challenge,
    PairedStats,
    PromotionRule,
    RollbackRule,
    Watch,
    alpha_at,
    metric_from_scores,
)

RULE = PromotionRule(min_examples=200, confidence=0.95, margin=0.0, look_every=50)


def paired_correctness(
    rng: np.random.Generator, n: int, p_champion: float, p_challenger: float, rho: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Correlated 0/1 correctness of two models on the same examples (shared difficulty)."""
    shared = rng.random(n) < rho
    u = rng.random(n)
    champion = np.where(shared, u < p_champion, rng.random(n) < p_champion)
    challenger = np.where(shared, u < p_challenger, rng.random(n) < p_challenger)
    return champion.astype(float), challenger.astype(float)


def run(
    challenge: Challenge, champion: np.ndarray, challenger: np.ndarray, rule: PromotionRule
) -> int | None:
    """The number of pairs after which the test promoted, or None."""
    for i, (a, b) in enumerate(zip(champion, challenger, strict=True)):
        verdict = challenge.add(float(a), float(b), rule)
        if verdict is not None and verdict.decide:
            return i + 1
    return None


def test_paired_stats_match_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.2, 1.5, size=1000)
    stats = PairedStats()
    for v in values:
        stats.add(float(v))
    assert stats.n == 1000
    assert stats.mean == pytest.approx(values.mean())
    assert stats.variance == pytest.approx(values.var(ddof=1))


def test_alpha_spending_never_exceeds_alpha() -> None:
    assert alpha_at(1, 0.05) == pytest.approx(0.05 * 6 / math.pi**2)
    assert sum(alpha_at(k, 0.05) for k in range(1, 10_000)) < 0.05
    with pytest.raises(ValueError):
        alpha_at(0, 0.05)


def test_equal_models_are_rarely_promoted_however_long_the_test_runs() -> None:
    """Type I error under continuous monitoring: at most alpha (plus sampling slack)."""
    rng = np.random.default_rng(11)
    runs, promoted = 300, 0
    for i in range(runs):
        champion, challenger = paired_correctness(rng, 3000, 0.8, 0.8)
        challenge = Challenge(stream="s", metric="accuracy", champion=1, challenger=2)
        if run(challenge, champion, challenger, RULE) is None:
            assert challenge.looks == (3000 - 200) // 50 + 1, i  # looked all along
        else:
            promoted += 1
    # binomial(300, 0.05): mean 15, sd 3.8; the bound is conservative, so far fewer
    assert promoted / runs <= 0.05


def test_a_clearly_better_challenger_is_promoted_soon_after_the_minimum() -> None:
    rng = np.random.default_rng(5)
    delays = []
    for _ in range(50):
        champion, challenger = paired_correctness(rng, 3000, 0.75, 0.85)
        challenge = Challenge(stream="s", metric="accuracy", champion=1, challenger=2)
        at = run(challenge, champion, challenger, RULE)
        assert at is not None and at >= RULE.min_examples
        delays.append(at)
    assert np.median(delays) <= 600


def test_no_promotion_before_min_examples_even_with_a_perfect_challenger() -> None:
    challenge = Challenge(stream="s", metric="accuracy", champion=1, challenger=2)
    verdicts = [challenge.add(0.0, 1.0, RULE) for _ in range(199)]
    assert verdicts == [None] * 199
    verdict = challenge.add(0.0, 1.0, RULE)
    assert verdict is not None and verdict.decide and verdict.statistic == math.inf
    assert verdict.values == {"champion_accuracy": 0.0, "challenger_accuracy": 1.0}
    evidence = verdict.evidence()
    assert evidence["n"] == 200 and evidence["statistic"] == "inf" and evidence["look"] == 1


def test_the_margin_must_be_beaten_too() -> None:
    rng = np.random.default_rng(8)
    champion, challenger = paired_correctness(rng, 5000, 0.80, 0.83)
    strict = PromotionRule(min_examples=200, confidence=0.95, margin=0.05)
    assert run(Challenge("s", "accuracy", 1, 2), champion, challenger, strict) is None
    assert run(Challenge("s", "accuracy", 1, 2), champion, challenger, RULE) is not None


def test_a_worse_challenger_is_never_promoted() -> None:
    rng = np.random.default_rng(9)
    champion, challenger = paired_correctness(rng, 3000, 0.85, 0.75)
    assert run(Challenge("s", "accuracy", 1, 2), champion, challenger, RULE) is None


def test_regression_scores_compare_errors() -> None:
    """MAE: scores are minus the absolute error; a smaller error wins."""
    rng = np.random.default_rng(2)
    y = rng.normal(size=2000)
    champion = -np.abs(y - (y + rng.normal(0, 1.0, size=2000)))
    challenger = -np.abs(y - (y + rng.normal(0, 0.5, size=2000)))
    challenge = Challenge(stream="s", metric="mae", champion=1, challenger=2)
    at = run(challenge, champion, challenger, RULE)
    assert at is not None
    v = challenge.verdict(RULE)
    assert v.values["challenger_mae"] < v.values["champion_mae"]


def test_a_decided_challenge_says_nothing_more() -> None:
    challenge = Challenge(stream="s", metric="accuracy", champion=1, challenger=2, decided=True)
    assert challenge.add(0.0, 1.0, RULE) is None and challenge.stats.n == 0


def test_rules_validate_their_parameters() -> None:
    with pytest.raises(ValueError):
        PromotionRule(min_examples=0, confidence=0.95)
    with pytest.raises(ValueError):
        PromotionRule(min_examples=10, confidence=0.4)
    with pytest.raises(ValueError):
        RollbackRule(min_examples=100, margin=0.05, window=50)


ROLLBACK = RollbackRule(min_examples=100, margin=0.05, window=200)


def test_rollback_when_the_new_champion_falls_behind_its_predecessor() -> None:
    rng = np.random.default_rng(4)
    good_new, good_old = paired_correctness(rng, 500, 0.9, 0.8)
    bad_new, bad_old = paired_correctness(rng, 500, 0.6, 0.8)
    watch = Watch(stream="s", metric="accuracy", champion=2, predecessor=1, window=200)
    decided = [
        watch.add(float(a), float(b), ROLLBACK) for a, b in zip(good_new, good_old, strict=True)
    ]
    assert not any(v is not None and v.decide for v in decided)
    assert decided[98] is None and decided[99] is not None  # from min_examples on
    at = None
    for i, (a, b) in enumerate(zip(bad_new, bad_old, strict=True)):
        v = watch.add(float(a), float(b), ROLLBACK)
        if v is not None and v.decide:
            at = i
            drop = v.values["predecessor_rolling_accuracy"] - v.values["champion_rolling_accuracy"]
            assert drop == pytest.approx(v.statistic) and v.statistic > 0.05
            assert v.n == 200 and v.evidence()["rule"] == "rollback"
            break
    assert at is not None and at < 200  # the window turns within its own length


def test_no_rollback_within_the_margin() -> None:
    rng = np.random.default_rng(6)
    new, old = paired_correctness(rng, 3000, 0.78, 0.80, rho=0.9)
    watch = Watch(stream="s", metric="accuracy", champion=2, predecessor=1, window=1000)
    rule = RollbackRule(min_examples=500, margin=0.05, window=1000)
    assert not any(
        (v := watch.add(float(a), float(b), rule)) is not None and v.decide
        for a, b in zip(new, old, strict=True)
    )


def test_rollback_on_a_regression_metric_compares_the_metric_itself() -> None:
    watch = Watch(stream="s", metric="rmse", champion=2, predecessor=1, window=100)
    rule = RollbackRule(min_examples=10, margin=0.5, window=100)
    verdicts = [watch.add(-4.0, -1.0, rule) for _ in range(10)]  # RMSE 2 against 1
    v = verdicts[-1]
    assert v is not None and v.decide and v.statistic == pytest.approx(1.0)
    assert metric_from_scores("mae", -0.3) == pytest.approx(0.3)
