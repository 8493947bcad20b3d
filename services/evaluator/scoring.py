"""Live metrics of served models: per (stream, model version, role), cumulative and rolling.

Pure: no Kafka, no registry. The evaluator scores each labelled example with the model
versions it has loaded (fixed snapshots, so the score is honest) and feeds the outcome
here. Metric names are the learner's (``accuracy``, ``f1_macro``, ``log_loss`` for class
labels; ``mae``, ``rmse``, ``r2`` for numbers), each also as ``rolling_<name>``.

:func:`example_score` turns one prediction into a per-example score, *higher is better*,
for the paired comparisons of :mod:`services.evaluator.decision`: correctness (0/1) for
``accuracy`` and ``f1_macro``, minus the log loss, minus the absolute error (``mae``) or
minus the squared error (``rmse``, ``r2``).

>>> lm = LiveMetrics(task="class", window=2)
>>> for y, p in [(1, 1), (1, 0), (0, 0)]:
...     lm.update(y, p, None)
>>> lm.example_count, round(lm.values()["accuracy"], 3), lm.values()["rolling_accuracy"]
(3, 0.667, 0.5)
>>> example_score("mae", "number", 3.0, 2.5, None)
-0.5
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from river import metrics, stats, utils

from schemas import MetricSnapshot, derive_id

__all__ = [
    "METRICS",
    "LOWER_IS_BETTER",
    "LiveMetrics",
    "Scoreboard",
    "example_score",
    "primary_value",
]

Task = Literal["class", "number"]

METRICS: dict[str, tuple[str, ...]] = {
    "class": ("accuracy", "f1_macro", "log_loss"),
    "number": ("mae", "rmse", "r2"),
}
"""Metric names per label kind; each also exists as ``rolling_<name>``."""

LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
"""Metrics where a smaller value is better."""

_EPS = 1e-15
_RIVER: dict[str, Any] = {
    "accuracy": metrics.Accuracy,
    "f1_macro": metrics.MacroF1,
    "mae": metrics.MAE,
    "rmse": metrics.RMSE,
    "r2": metrics.R2,
}


def _log_loss(y: Any, proba: Mapping[str, float] | None) -> float | None:
    """Per-example log loss from probabilities keyed by the class as a string."""
    if not proba:
        return None
    p = float(proba.get(str(y), 0.0))
    return -math.log(min(max(p, _EPS), 1.0))


def example_score(
    metric: str, task: Task, y: Any, prediction: Any, proba: Mapping[str, float] | None
) -> float:
    """One prediction's score for ``metric``, oriented so that higher is better.

    >>> example_score("accuracy", "class", "a", "a", None)
    1.0
    >>> example_score("rmse", "number", 1, 3, None)
    -4.0
    >>> round(example_score("log_loss", "class", True, True, {"True": 0.5, "False": 0.5}), 4)
    -0.6931
    """
    if task == "class":
        if metric == "log_loss":
            loss = _log_loss(y, proba)
            return -(loss if loss is not None else -math.log(_EPS))
        return 1.0 if prediction is not None and prediction == y else 0.0
    err = float(y) - float(prediction) if prediction is not None else float(y)
    if metric == "mae":
        return -abs(err)
    return -(err * err)


def primary_value(values: Mapping[str, float], metric: str, *, rolling: bool) -> float | None:
    """The (rolling) value of ``metric`` in a snapshot's values, if present."""
    return values.get(f"rolling_{metric}" if rolling else metric)


class LiveMetrics:
    """Cumulative and rolling metrics of one model version on one stream.

    Parameters
    ----------
    task
        ``"class"`` or ``"number"``: the stream's label kind.
    window
        Examples in the rolling window (the policy's ``rolling_window``).
    """

    def __init__(self, *, task: Task, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.task: Task = task
        self.window = window
        self.example_count = 0
        names = [n for n in METRICS[task] if n in _RIVER]
        self.cumulative: dict[str, Any] = {n: _RIVER[n]() for n in names}
        self.rolling: dict[str, Any] = {
            n: utils.Rolling(_RIVER[n], window_size=window) for n in names
        }
        self._losses = 0  # examples that had probabilities (log loss defined)
        self._recent_losses: deque[bool] = deque(maxlen=window)
        if task == "class":
            self.cumulative["log_loss"] = stats.Mean()
            self.rolling["log_loss"] = utils.Rolling(stats.Mean, window_size=window)

    def update(self, y: Any, prediction: Any, proba: Mapping[str, float] | None) -> None:
        """Score one prediction against its label."""
        self.example_count += 1
        if prediction is None:
            return
        if self.task == "class":
            for name in ("accuracy", "f1_macro"):
                self.cumulative[name].update(y, prediction)
                self.rolling[name].update(y, prediction)
            loss = _log_loss(y, proba)
            self._recent_losses.append(loss is not None)
            if loss is not None:
                self._losses += 1
                self.cumulative["log_loss"].update(loss)
                self.rolling["log_loss"].update(loss)
            return
        for name in METRICS["number"]:
            self.cumulative[name].update(float(y), float(prediction))
            self.rolling[name].update(float(y), float(prediction))

    def values(self) -> dict[str, float]:
        """Cumulative and rolling values now; non-finite ones (nothing scored) left out."""
        out: dict[str, float] = {}
        for name in METRICS[self.task]:
            if name == "log_loss" and not self._losses:
                continue  # no probabilities seen: a mean of nothing is not a value
            pairs = ((name, self.cumulative[name]), (f"rolling_{name}", self.rolling[name]))
            for key, metric in pairs:
                if key == "rolling_log_loss" and not any(self._recent_losses):
                    continue
                value = float(metric.get())
                if math.isfinite(value):
                    out[key] = value
        return out


SERVED_ROLE = "served"  # the stream's track across swaps: what was served, whatever version
SERVED_VERSION = 0  # its key in the scoreboard (versions start at 1)


@dataclass
class _Track:
    metrics: LiveMetrics
    model: str
    used: int = 0  # the scoreboard's tick when last scored


@dataclass
class Scoreboard:
    """Every (stream, version, role) being scored, emitting a snapshot every ``every``.

    A snapshot's ``event_id`` derives from (stream, version, role, example count), so a
    restored scoreboard that re-scores the same examples re-emits the same ids.

    >>> from datetime import datetime, timezone
    >>> board = Scoreboard(every=2)
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> board.record("s", "s", 3, "champion", "class", 10, 1, 1, None, t) is None
    True
    >>> snap = board.record("s", "s", 3, "champion", "class", 10, 0, 1, None, t)
    >>> snap.version, snap.role, snap.source, snap.example_count, snap.values["accuracy"]
    (3, 'champion', 'evaluator', 2, 0.5)
    """

    every: int
    tracks: dict[tuple[str, int, str], _Track] = field(default_factory=dict)
    tick: int = 0

    def get(self, stream: str, version: int, role: str) -> LiveMetrics | None:
        """The metrics of a tracked (stream, version, role)."""
        track = self.tracks.get((stream, version, role))
        return track.metrics if track else None

    def record(
        self,
        stream: str,
        model: str,
        version: int,
        role: str,
        task: Task,
        window: int,
        y: Any,
        prediction: Any,
        proba: Mapping[str, float] | None,
        event_time: Any,
    ) -> MetricSnapshot | None:
        """Score one prediction; returns a snapshot when one is due."""
        key = (stream, version, role)
        track = self.tracks.get(key)
        if track is None or track.metrics.task != task or track.metrics.window != window:
            track = self.tracks[key] = _Track(LiveMetrics(task=task, window=window), model)
        self.tick += 1
        track.used = self.tick
        track.metrics.update(y, prediction, proba)
        if track.metrics.example_count % self.every:
            return None
        return self.snapshot(stream, version, role, event_time)

    def snapshot(
        self, stream: str, version: int, role: str, event_time: Any = None
    ) -> MetricSnapshot | None:
        """A snapshot of one track now (None if it is not tracked)."""
        track = self.tracks.get((stream, version, role))
        if track is None:
            return None
        lm = track.metrics
        return MetricSnapshot(
            event_id=derive_id(
                f"{stream}/{track.model}/v{version}/{role}/{lm.example_count}", "evaluator-metrics"
            ),
            stream=stream,
            model=track.model,
            version=version,
            source="evaluator",
            role=role,
            values=lm.values(),
            window=lm.window,
            example_count=lm.example_count,
            event_time=event_time,
        )

    def record_served(
        self,
        stream: str,
        model: str,
        version: int,
        task: Task,
        window: int,
        y: Any,
        prediction: Any,
        proba: Mapping[str, float] | None,
        event_time: Any,
    ) -> MetricSnapshot | None:
        """Score the served champion's answer on the stream's ``served`` track.

        Unlike the per-version tracks, this one runs across swaps: the served model's
        accuracy over time, whatever its version or kind. A snapshot is due every
        ``every // 5`` examples and names the version serving then.

        >>> board = Scoreboard(every=10)
        >>> snaps = [board.record_served("s", "s", v, "class", 4, 1, p, None, None)
        ...          for v, p in [(1, 1), (1, 0), (2, 1), (2, 1)]]
        >>> [(s.version, s.example_count, s.values["accuracy"]) for s in snaps if s]
        [(1, 2, 0.5), (2, 4, 0.75)]
        """
        key = (stream, SERVED_VERSION, SERVED_ROLE)
        track = self.tracks.get(key)
        if track is None or track.metrics.task != task or track.metrics.window != window:
            track = self.tracks[key] = _Track(LiveMetrics(task=task, window=window), model)
        track.used = self.tick
        track.metrics.update(y, prediction, proba)
        lm = track.metrics
        if lm.example_count % max(1, self.every // 5):
            return None
        return MetricSnapshot(
            event_id=derive_id(
                f"{stream}/{model}/{SERVED_ROLE}/{lm.example_count}", "evaluator-metrics"
            ),
            stream=stream,
            model=model,
            version=version,
            source="evaluator",
            role=SERVED_ROLE,
            values=lm.values(),
            window=lm.window,
            example_count=lm.example_count,
            event_time=event_time,
        )

    def prune(self, stream: str, keep: int) -> int:
        """Keep only the stream's ``keep`` most recently scored tracks; returns how many
        were dropped. An online champion is a new version every few thousand examples:
        without this the scoreboard would grow for ever.

        >>> board = Scoreboard(every=10)
        >>> for v in range(1, 6):
        ...     _ = board.record("s", "s", v, "champion", "class", 10, 1, 1, None, None)
        >>> board.prune("s", keep=2), sorted(v for _, v, _ in board.tracks)
        (3, [4, 5])
        """
        mine = sorted(
            (t.used, k) for k, t in self.tracks.items() if k[0] == stream and k[2] != SERVED_ROLE
        )
        doomed = [k for _, k in mine[: max(len(mine) - keep, 0)]]
        for k in doomed:
            del self.tracks[k]
        return len(doomed)

    def forget(self, stream: str, keep: set[tuple[int, str]]) -> int:
        """Drop a stream's tracks whose (version, role) is not in ``keep``; returns how many."""
        doomed = [
            k
            for k in self.tracks
            if k[0] == stream and k[2] != SERVED_ROLE and (k[1], k[2]) not in keep
        ]
        for k in doomed:
            del self.tracks[k]
        return len(doomed)
