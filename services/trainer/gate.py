"""The promotion gate (pure): score the champion and the candidates on one holdout, then
decide who, if anyone, wins.

A candidate wins only when it

- passes the fairness check: its gap (largest minus smallest primary metric across the
  segments of the policy's segment feature) is at most ``max_gap``, or no wider than the
  champion's own gap (a candidate may narrow an already-too-wide gap, never widen it
  beyond the limit);
- beats the champion on the primary metric by more than nothing and by at least
  ``margin`` (with no champion, any fair candidate qualifies).

The best qualifying candidate wins; every other one gets the reason it lost.

>>> champ = Scored("online v3", {"accuracy": 0.80}, gap=0.05)
>>> fast = Scored("random_forest", {"accuracy": 0.90}, gap=0.30)
>>> fair = Scored("logistic_regression", {"accuracy": 0.85}, gap=0.04)
>>> d = decide(metric="accuracy", champion=champ, candidates=[fast, fair], margin=0.01,
...            max_gap=0.1)
>>> d.winner
'logistic_regression'
>>> d.verdicts[0].reason
'segment gap 0.300 exceeds the limit 0.100 (champion 0.050)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.common.predictor import clone
from services.trainer.train import LOWER_IS_BETTER, Task, evaluate, improvement

MIN_SEGMENT = 10  # segments with fewer holdout examples are reported but not compared


@dataclass(frozen=True)
class Scored:
    """A model's holdout metrics, per-segment primary metric and max gap (None: no segments)."""

    name: str
    metrics: Mapping[str, float]
    gap: float | None = None
    segments: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Why one candidate won or lost."""

    name: str
    promoted: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    """The gate's outcome: the winner (None: keep the champion) and every verdict."""

    winner: str | None
    verdicts: tuple[Verdict, ...]
    summary: str

    def verdict(self, name: str) -> Verdict:
        """The verdict of candidate ``name``."""
        return next(v for v in self.verdicts if v.name == name)


def segment_report(
    task: Task,
    metric: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    segments: Sequence[Any],
    *,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    min_size: int = MIN_SEGMENT,
) -> tuple[dict[str, float], float | None]:
    """The primary metric per segment value and the max gap among segments of at least
    ``min_size`` examples (None when fewer than two such segments exist).

    >>> segment_report("class", "accuracy", [1, 1, 0, 0], [1, 1, 1, 0], ["a", "a", "b", "b"],
    ...                min_size=1)
    ({'a': 1.0, 'b': 0.5}, 0.5)
    """
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(segments):
        groups.setdefault("null" if s is None else str(s), []).append(i)
    values: dict[str, float] = {}
    compared: list[float] = []
    for name, idx in sorted(groups.items()):
        yt = [y_true[i] for i in idx]
        yp = [y_pred[i] for i in idx]
        pr = proba[idx] if proba is not None and metric == "log_loss" else None
        value = evaluate(task, yt, yp, pr, classes).get(metric, math.nan)
        values[name] = value
        if len(idx) >= min_size and not math.isnan(value):
            compared.append(value)
    gap = max(compared) - min(compared) if len(compared) >= 2 else None
    return values, gap


def prequential(
    model: Any,
    xs: Sequence[Mapping[str, Any]],
    ys: Sequence[Any],
    *,
    learn_first: Sequence[tuple[Mapping[str, Any], Any]] = (),
) -> list[Any]:
    """Test-then-train an online (River) model over ``xs`` on a copy: its predictions as it
    would have served them. ``learn_first``: examples the served copy learned after the
    snapshot and before ``xs`` (a follower learns every example), taught to the copy
    first. The model passed in is left untouched.

    >>> from river import linear_model
    >>> m = linear_model.LinearRegression()
    >>> preds = prequential(m, [{"x": 1.0}] * 3, [2.0] * 3)
    >>> len(preds), m.predict_one({"x": 1.0})
    (3, 0.0)
    >>> caught_up = prequential(m, [{"x": 1.0}], [2.0], learn_first=[({"x": 1.0}, 2.0)] * 50)
    >>> caught_up[0] > preds[0], m.predict_one({"x": 1.0})
    (True, 0.0)
    """
    live = clone(model)
    for x, y in learn_first:
        live.learn_one(dict(x), y)
    out = []
    for x, y in zip(xs, ys, strict=True):
        out.append(live.predict_one(dict(x)))
        live.learn_one(dict(x), y)
    return out


def fair(candidate: Scored, champion: Scored | None, max_gap: float) -> str | None:
    """Why ``candidate`` fails the fairness check (None: it passes)."""
    if candidate.gap is None or candidate.gap <= max_gap + 1e-12:
        return None
    champion_gap = champion.gap if champion is not None else None
    if champion_gap is not None and candidate.gap <= champion_gap + 1e-12:
        return None  # above the limit, but narrower than what is served now
    shown = "none" if champion_gap is None else f"{champion_gap:.3f}"
    return f"segment gap {candidate.gap:.3f} exceeds the limit {max_gap:.3f} (champion {shown})"


def stronger(metric: str, *refs: Scored | None) -> Scored | None:
    """The reference a candidate must beat: the best of ``refs`` on ``metric`` (a reference
    without the metric cannot hold a place; None when there is none)."""
    present = [r for r in refs if r is not None]
    if not present:
        return None
    scored = [r for r in present if not math.isnan(r.metrics.get(metric, math.nan))]
    if not scored:
        return present[0]
    return max(scored, key=lambda r: improvement(metric, r.metrics[metric], 0.0))


def decide(
    *,
    metric: str,
    champion: Scored | None,
    candidates: Sequence[Scored],
    margin: float,
    max_gap: float,
) -> Decision:
    """Apply the gate to the candidates (in preference order for ties)."""
    verdicts: dict[str, str | None] = {}
    ranked: list[tuple[float, int, Scored]] = []
    champion_value = champion.metrics.get(metric) if champion is not None else None
    for order, cand in enumerate(candidates):
        value = cand.metrics.get(metric)
        if value is None or math.isnan(value):
            verdicts[cand.name] = f"no {metric} on the holdout"
            continue
        unfair = fair(cand, champion, max_gap)
        if unfair is not None:
            verdicts[cand.name] = unfair
            continue
        if champion is not None:
            if champion_value is None or math.isnan(champion_value):
                verdicts[cand.name] = None  # a champion without the metric cannot hold its place
            else:
                gain = improvement(metric, value, champion_value)
                if gain <= 0 or gain < margin:
                    verdicts[cand.name] = (
                        f"{metric} {value:.4f} does not beat the champion's "
                        f"{champion_value:.4f} by the margin {margin:g}"
                    )
                    continue
        verdicts[cand.name] = None
        ranked.append((improvement(metric, value, 0.0), -order, cand))
    if not ranked:
        against = f"champion {champion.name}" if champion is not None else "no champion"
        return Decision(
            None,
            tuple(Verdict(c.name, False, verdicts[c.name] or "") for c in candidates),
            f"no candidate passed the gate ({against}); nothing promoted",
        )
    winner = max(ranked, key=lambda r: (r[0], r[1]))[2]
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    out = []
    for c in candidates:
        if c.name == winner.name:
            reason = _win_reason(metric, winner, champion)
        else:
            reason = (
                verdicts[c.name] or f"{metric} not the best passing candidate ({direction} wins)"
            )
        out.append(Verdict(c.name, c.name == winner.name, reason))
    return Decision(
        winner.name, tuple(out), out[[c.name for c in candidates].index(winner.name)].reason
    )


def _win_reason(metric: str, winner: Scored, champion: Scored | None) -> str:
    value = winner.metrics[metric]
    if champion is None:
        return f"no champion: the best fair candidate ({metric} {value:.4f})"
    ref = champion.metrics.get(metric)
    shown = "n/a" if ref is None or math.isnan(ref) else f"{ref:.4f}"
    return f"{metric} {value:.4f} beats champion {champion.name} ({shown})"


def score_predictions(
    name: str,
    task: Task,
    metric: str,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    segments: Sequence[Any] | None,
    *,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> Scored:
    """A :class:`Scored` from predictions (``segments``: the segment value of each row)."""
    metrics = evaluate(task, y_true, y_pred, proba, classes)
    if segments is None:
        return Scored(name, metrics)
    per, gap = segment_report(task, metric, y_true, y_pred, segments, proba=proba, classes=classes)
    return Scored(name, metrics, gap, per)
