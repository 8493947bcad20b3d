"""When a challenger becomes champion, and when a new champion is rolled back.

Pure: no Kafka, no registry. Both rules work on *paired* per-example scores (the two
models on the same labelled example; higher is better, see
:func:`services.evaluator.scoring.example_score`), so the noise of the examples
themselves cancels out.

Promotion: a one-sided test on the paired differences ``d = challenger - champion``,
``H0: mean(d) <= margin`` against ``H1: mean(d) > margin``, with
``z = (mean(d) - margin) / (sd(d) / sqrt(n))``. It is looked at repeatedly while
examples arrive (every ``look_every`` pairs once ``min_examples`` are in), and peeking
inflates the error of a fixed-level test, so look ``k`` spends only
``alpha_k = alpha * 6 / (pi^2 k^2)`` of ``alpha = 1 - confidence``: the ``alpha_k`` sum to
``alpha``, so by the union bound the chance of *ever* promoting a challenger that is not
better by ``margin`` stays below ``alpha`` however long the test runs (an alpha-spending
sequential test). It needs no assumption on the metric beyond the central limit theorem
for the mean of the differences (so it serves accuracy and regression errors alike), and
it costs a little power compared with an SPRT tuned to a single alternative, which would
need an effect size we do not know in advance.

Rollback: after a promotion, the new champion and its predecessor are both scored on
every example; once the rolling window (``window`` pairs) holds at least
``min_examples``, the new champion is rolled back when its rolling metric is worse than
the predecessor's by more than ``margin`` (a drop in accuracy, a rise in MAE...). A
rollback is cheap and safe (the predecessor served before), so a point rule on a full
window, rather than a test, keeps the reaction quick.

>>> rule = PromotionRule(min_examples=100, confidence=0.95, margin=0.0, look_every=50)
>>> ch = Challenge(stream="s", metric="accuracy", champion=1, challenger=2)
>>> verdicts = [ch.add(float(i % 4 == 0), 1.0, rule) for i in range(100)]
>>> v = verdicts[-1]
>>> v.decide, v.n, round(v.mean_diff, 2), v.look
(True, 100, 0.75, 1)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from services.evaluator.scoring import LOWER_IS_BETTER

__all__ = [
    "Challenge",
    "PairedStats",
    "PromotionRule",
    "RollbackRule",
    "Verdict",
    "Watch",
    "alpha_at",
    "metric_from_scores",
]


def alpha_at(look: int, alpha: float) -> float:
    """The error spent at look ``look`` (1-based): ``alpha * 6 / (pi^2 look^2)``.

    >>> round(sum(alpha_at(k, 0.05) for k in range(1, 100_000)), 4)
    0.05
    """
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look}")
    return alpha * 6.0 / (math.pi**2 * look * look)


def metric_from_scores(metric: str, mean_score: float) -> float:
    """A metric's value from the mean of its per-example scores.

    Scores are correctness for ``accuracy`` (and ``f1_macro``, approximated by
    accuracy), minus the loss for ``log_loss`` and ``mae``, minus the squared error for
    ``rmse`` (and ``r2``, compared through RMSE).

    >>> metric_from_scores("accuracy", 0.8), metric_from_scores("rmse", -4.0)
    (0.8, 2.0)
    """
    if metric in ("rmse", "r2"):
        return math.sqrt(max(-mean_score, 0.0))
    if metric in LOWER_IS_BETTER:
        return -mean_score
    return mean_score


def _comparable(metric: str) -> str:
    return "rmse" if metric == "r2" else metric


@dataclass
class PairedStats:
    """Running mean and variance of paired differences (Welford).

    >>> s = PairedStats()
    >>> for d in (1.0, 0.0, -1.0, 0.0):
    ...     s.add(d)
    >>> s.n, s.mean, round(s.variance, 4)
    (4, 0.0, 0.6667)
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, d: float) -> None:
        """Add one difference."""
        self.n += 1
        delta = d - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (d - self.mean)

    @property
    def variance(self) -> float:
        """Sample variance (0 with fewer than two values)."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


@dataclass(frozen=True)
class PromotionRule:
    """The promotion test's parameters (from the stream's policy).

    Parameters
    ----------
    min_examples
        Paired labelled examples needed before the first look.
    confidence
        ``1 - alpha``: the chance of never promoting a challenger that is not better.
    margin
        How much better (in per-example score units) the challenger must be.
    look_every
        Pairs between two looks.
    """

    min_examples: int
    confidence: float
    margin: float = 0.0
    look_every: int = 50

    def __post_init__(self) -> None:
        if self.min_examples < 1 or self.look_every < 1:
            raise ValueError("min_examples and look_every must be >= 1")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")


@dataclass(frozen=True)
class RollbackRule:
    """The rollback rule's parameters (from the stream's policy)."""

    min_examples: int
    margin: float
    window: int

    def __post_init__(self) -> None:
        if self.min_examples < 1 or self.window < self.min_examples:
            raise ValueError("need 1 <= min_examples <= window")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one look: whether to act, and the evidence for it."""

    decide: bool
    rule: str  # "promotion" | "rollback"
    n: int
    mean_diff: float
    statistic: float
    threshold: float
    look: int = 0
    alpha: float | None = None
    values: dict[str, float] = field(default_factory=dict)

    def evidence(self) -> dict[str, Any]:
        """JSON-ready evidence to attach to the alias move."""
        doc: dict[str, Any] = {
            "rule": self.rule,
            "n": self.n,
            "mean_diff": round(self.mean_diff, 6),
            "statistic": self.statistic if math.isfinite(self.statistic) else str(self.statistic),
            "threshold": round(self.threshold, 6),
            "metrics": {k: round(v, 6) for k, v in self.values.items()},
        }
        if self.rule == "promotion":
            doc |= {"look": self.look, "alpha_spent": self.alpha}
        return doc


@dataclass
class Challenge:
    """One champion-challenger pair under test on one stream."""

    stream: str
    metric: str
    champion: int
    challenger: int
    family: str | None = None  # set: the challenger's successive snapshots share this test
    stats: PairedStats = field(default_factory=PairedStats)
    champion_sum: float = 0.0
    challenger_sum: float = 0.0
    looks: int = 0
    decided: bool = False

    def add(
        self, champion_score: float, challenger_score: float, rule: PromotionRule
    ) -> Verdict | None:
        """Add one pair; returns a verdict when this pair makes a look due."""
        if self.decided:
            return None
        self.stats.add(challenger_score - champion_score)
        self.champion_sum += champion_score
        self.challenger_sum += challenger_score
        n = self.stats.n
        if n < rule.min_examples or (n - rule.min_examples) % rule.look_every:
            return None
        self.looks += 1
        return self.verdict(rule)

    def verdict(self, rule: PromotionRule) -> Verdict:
        """The test at the current look."""
        n, mean = self.stats.n, self.stats.mean
        alpha = alpha_at(max(self.looks, 1), 1.0 - rule.confidence)
        threshold = NormalDist().inv_cdf(1.0 - alpha)
        se = math.sqrt(self.stats.variance / n) if n else 0.0
        excess = mean - rule.margin
        if se > 0:
            z = excess / se
        else:  # identical differences: the sign says it all
            z = math.inf if excess > 0 else -math.inf if excess < 0 else 0.0
        decide = n >= rule.min_examples and z > threshold
        m = _comparable(self.metric)
        return Verdict(
            decide=decide,
            rule="promotion",
            n=n,
            mean_diff=mean,
            statistic=z,
            threshold=threshold,
            look=self.looks,
            alpha=alpha,
            values={
                f"champion_{m}": metric_from_scores(m, self.champion_sum / n) if n else math.nan,
                f"challenger_{m}": metric_from_scores(m, self.challenger_sum / n)
                if n
                else math.nan,
            },
        )


@dataclass
class Watch:
    """A freshly promoted champion watched against its predecessor on one stream."""

    stream: str
    metric: str
    champion: int
    predecessor: int
    window: int
    new_scores: deque[float] = field(default_factory=deque)
    old_scores: deque[float] = field(default_factory=deque)
    new_sum: float = 0.0
    old_sum: float = 0.0
    n: int = 0
    decided: bool = False

    def add(
        self, champion_score: float, predecessor_score: float, rule: RollbackRule
    ) -> Verdict | None:
        """Add one pair; returns a verdict once the window holds enough pairs."""
        if self.decided:
            return None
        self.n += 1
        self.new_scores.append(champion_score)
        self.old_scores.append(predecessor_score)
        self.new_sum += champion_score
        self.old_sum += predecessor_score
        while len(self.new_scores) > min(self.window, rule.window):
            self.new_sum -= self.new_scores.popleft()
            self.old_sum -= self.old_scores.popleft()
        size = len(self.new_scores)
        if size < rule.min_examples:
            return None
        m = _comparable(self.metric)
        new = metric_from_scores(m, self.new_sum / size)
        old = metric_from_scores(m, self.old_sum / size)
        worse_by = new - old if m in LOWER_IS_BETTER else old - new
        return Verdict(
            decide=worse_by > rule.margin,
            rule="rollback",
            n=size,
            mean_diff=(self.new_sum - self.old_sum) / size,
            statistic=worse_by,
            threshold=rule.margin,
            values={f"champion_rolling_{m}": new, f"predecessor_rolling_{m}": old},
        )
