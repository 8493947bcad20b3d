"""What the demo's report says, computed from plain data. Pure.

The inputs (:class:`ReportData`, built from events by :func:`build_report`): accuracy
curves (the served model's, from the evaluator's metric snapshots, and the baselines'),
the true drift points, detected drift events, swaps and the model versions with their
lineage. :func:`summarize` computes the summary table; :mod:`services.demo.report` draws
it all as HTML.

Definitions used in the summary (x-axis: the example index in the stream):

- **overall accuracy**: correct / scored over the whole stream;
- **post-drift accuracy**: the same over the examples from the first drift's start on;
- **recovery** after a drift: the number of examples from the drift's position (the
  centre of a gradual drift) to the first example of the first rolling window that lies
  entirely after the transition and whose accuracy is back within ``tolerance`` (5
  points by default) of the model's rolling accuracy just before the transition began;
  ``None`` ("not recovered") when no such window ends before the next drift's
  transition starts (or the stream ends), and after a drift the model did not recover
  from (its level before the next one is not a level to regain). A model that never
  dropped gets 0 (abrupt) or half the width (gradual).

>>> from services.demo.stream import DriftPoint
>>> flags = [True] * 1000 + [False] * 200 + [True] * 800
>>> curve = Curve.from_flags("m", flags, window=100, step=50)
>>> row = summarize([curve], [DriftPoint(1000, 1, "abrupt")])[0]
>>> row.overall, row.post_drift, row.recovery
(0.9, 0.8, (200,))

For a number label the curves hold the absolute error (MAE, lower is better): the chart's
scale follows the values and a model has recovered once its rolling MAE is back within
``ERROR_TOLERANCE`` (10%) of its level before the drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from schemas.drift import DriftDetected
from schemas.metrics import MetricSnapshot
from schemas.models import AliasMoved, ModelVersionPublished
from services.demo.baselines import BaselineResult
from services.demo.stream import DemoStream, DriftPoint

__all__ = [
    "Curve",
    "Marker",
    "ModelVersionInfo",
    "ReportData",
    "SummaryRow",
    "build_report",
    "summarize",
    "summarize_data",
]

Role = Literal["served", "baseline"]
DEFAULT_TOLERANCE = 0.05
ERROR_TOLERANCE = 0.1  # relative, for error metrics (MAE)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})


@dataclass(frozen=True)
class Curve:
    """One model's accuracy over the stream.

    Parameters
    ----------
    name
        Shown in the legend and the tables.
    role
        ``served`` (what driftline served) or ``baseline``.
    rolling
        ``(example index, rolling accuracy)`` points, in index order.
    window
        The rolling window, in examples.
    cumulative
        ``(example index, scored so far, correct so far)`` points, for exact overall
        and post-drift accuracy (empty: those are averaged from ``rolling``).

    Examples
    --------
    >>> Curve.from_flags("m", [True, False, None, True], window=2, step=2).cumulative
    ((2, 2, 1.0), (4, 3, 2.0))
    """

    name: str
    role: Role
    rolling: tuple[tuple[int, float], ...]
    window: int
    cumulative: tuple[tuple[int, int, float], ...] = ()

    @classmethod
    def from_flags(
        cls,
        name: str,
        correct: Sequence[float | None],
        *,
        window: int = 1000,
        step: int = 100,
        role: Role = "baseline",
    ) -> Curve:
        """A curve from per-example correctness (``None``: not scored), every ``step``."""
        if window < 1 or step < 1:
            raise ValueError("window and step must be >= 1")
        rolling: list[tuple[int, float]] = []
        cumulative: list[tuple[int, int, float]] = []
        recent: list[float] = []
        hits = total_hits = 0.0
        scored = 0
        needed = min(window, 50)
        n = len(correct)
        for i, flag in enumerate(correct, start=1):
            if flag is not None:
                recent.append(flag)
                hits += flag
                scored += 1
                total_hits += flag
                if len(recent) > window:
                    hits -= recent[len(recent) - window - 1]
            if i % step == 0 or i == n:
                cumulative.append((i, scored, total_hits))
                if min(len(recent), window) >= needed:
                    rolling.append((i, hits / min(len(recent), window)))
        return cls(name, role, tuple(rolling), window, tuple(cumulative))

    @classmethod
    def from_snapshots(
        cls,
        name: str,
        snapshots: Iterable[MetricSnapshot],
        *,
        metric: str = "accuracy",
        role: Role = "served",
        offset: int = 0,
    ) -> Curve:
        """A curve from metric snapshots: ``rolling_<metric>`` and the cumulative one.

        The x-axis is ``example_count + offset``; snapshots are sorted by it and a
        repeated count keeps the last one. ``window`` is the snapshots' window.
        """
        by_count: dict[int, MetricSnapshot] = {}
        for snap in snapshots:
            by_count[snap.example_count + offset] = snap
        rolling: list[tuple[int, float]] = []
        cumulative: list[tuple[int, int, float]] = []
        window = 1
        for x in sorted(by_count):
            snap = by_count[x]
            window = snap.window
            value = snap.values.get(f"rolling_{metric}")
            if value is not None and math.isfinite(value):
                rolling.append((x, value))
            total = snap.values.get(metric)
            if total is not None and math.isfinite(total) and snap.example_count > 0:
                cumulative.append((x, snap.example_count, total * snap.example_count))
        return cls(name, role, tuple(rolling), window, tuple(cumulative))

    @classmethod
    def from_served(
        cls,
        name: str,
        snapshots: Iterable[MetricSnapshot],
        *,
        role: str = "champion",
        starts: Mapping[int, int] | None = None,
        metric: str = "accuracy",
    ) -> Curve:
        """The served model's curve from the evaluator's per-version snapshots.

        The evaluator counts examples per (version, role), so each version's track
        restarts at 1. Tracks of ``role`` are laid end to end in the order their first
        snapshot arrives: version ``v``'s examples start at ``starts[v]`` (the stream
        index where serving first answered with it) when given, else where the previous
        track ended (the first at 0). Cumulative accuracy is summed across tracks.

        >>> from schemas.metrics import MetricSnapshot
        >>> def snap(v, n, acc):
        ...     return MetricSnapshot(stream="s", model="s", version=v, source="evaluator",
        ...         role="champion", values={"rolling_accuracy": acc, "accuracy": acc},
        ...         window=100, example_count=n)
        >>> curve = Curve.from_served("served", [snap(1, 100, 0.5), snap(2, 100, 0.9)],
        ...                          starts={1: 50})
        >>> curve.rolling, curve.cumulative
        (((150, 0.5), (250, 0.9)), ((150, 100, 50.0), (250, 200, 140.0)))
        """
        tracks: dict[int | None, dict[int, MetricSnapshot]] = {}
        for snap in snapshots:
            if snap.role == role:
                tracks.setdefault(snap.version, {})[snap.example_count] = snap
        rolling: list[tuple[int, float]] = []
        cumulative: list[tuple[int, int, float]] = []
        end = scored = 0
        hits = 0.0
        window = 1
        has_totals = True
        for version, by_count in tracks.items():
            offset = (
                starts[version] if starts and version is not None and version in starts else end
            )
            last_count, last_hits = 0, 0.0
            for count in sorted(by_count):
                snap = by_count[count]
                window = max(window, snap.window)
                value = snap.values.get(f"rolling_{metric}")
                if value is not None and math.isfinite(value):
                    rolling.append((offset + count, value))
                total = snap.values.get(metric)
                if total is None or not math.isfinite(total):
                    has_totals = False
                    continue
                last_count, last_hits = count, total * count
                cumulative.append((offset + count, scored + last_count, hits + last_hits))
            end = offset + max(by_count)
            scored += last_count
            hits += last_hits
        rolling.sort(key=lambda p: p[0])
        cumulative.sort(key=lambda p: p[0])
        return cls(name, "served", tuple(rolling), window, tuple(cumulative) if has_totals else ())


@dataclass(frozen=True)
class Marker:
    """A vertical marker on the chart at an example index (detected drift, swap).

    >>> Marker(1200, "v3", "promoted").index
    1200
    """

    index: int
    label: str
    detail: str = ""

    @classmethod
    def from_drift(cls, event: DriftDetected, *, offset: int = 0) -> Marker:
        """A detected drift, at the learner's example count."""
        what = f"{event.kind} drift ({event.detector}" + (
            f", {event.feature})" if event.feature else ")"
        )
        where = f"{event.topic}[{event.partition}]@{event.offset}"
        return cls(event.example_count + offset, what, f"{what} at {where}")

    @classmethod
    def from_alias_move(cls, event: AliasMoved, index: int) -> Marker:
        """A swap: the alias move, at the index where serving first answered with it."""
        to = f"v{event.to_version}" if event.to_version is not None else "none"
        since = f"v{event.from_version}" if event.from_version is not None else "none"
        return cls(
            index, to, f"{event.alias} {since} -> {to} ({event.reason.value}, {event.actor})"
        )


@dataclass(frozen=True)
class ModelVersionInfo:
    """One model version for the versions table."""

    version: int
    kind: str
    algorithm: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    lineage: str = ""
    example_count: int = 0
    parent: int | None = None
    aliases: str = ""

    @classmethod
    def from_event(cls, event: ModelVersionPublished, *, aliases: str = "") -> ModelVersionInfo:
        """From the registry's event; lineage as half-open ranges per topic-partition."""
        ranges = ", ".join(
            f"{r.topic}[{r.partition}] [{r.start}, {r.end})" for r in event.lineage.ranges
        )
        return cls(
            version=event.version,
            kind=event.kind,
            algorithm=event.algorithm,
            metrics=dict(event.metrics),
            lineage=ranges,
            example_count=event.lineage.example_count,
            parent=event.parent_version,
            aliases=aliases,
        )


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary table; accuracies in [0, 1], None when unknown."""

    name: str
    role: Role
    overall: float | None
    post_drift: float | None
    recovery: tuple[int | None, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows."""

    stream: str
    size: int
    curves: tuple[Curve, ...]
    drifts: tuple[DriftPoint, ...] = ()
    detected: tuple[Marker, ...] = ()
    swaps: tuple[Marker, ...] = ()
    versions: tuple[ModelVersionInfo, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    description: str = ""
    title: str = "driftline demo report"
    tolerance: float = DEFAULT_TOLERANCE
    metric: str = "accuracy"
    """What the curves hold: ``accuracy`` or ``mae``."""


def build_report(
    stream: DemoStream,
    baselines: Sequence[BaselineResult],
    *,
    served: Curve | None = None,
    drift_events: Iterable[DriftDetected] = (),
    swaps: Iterable[tuple[AliasMoved, int]] = (),
    versions: Iterable[ModelVersionPublished] = (),
    aliases: Mapping[int, str] | None = None,
    metadata: Iterable[tuple[str, str]] = (),
    window: int | None = None,
    step: int | None = None,
) -> ReportData:
    """The report of a demo run, from what the demo has at its end.

    ``served`` is the served model's curve (:meth:`Curve.from_served`); baselines are
    drawn with the stream's rolling window (``policy.rolling_window`` unless
    ``window``) every ``step`` examples (default: about 300 points per curve). ``swaps``
    pairs each alias move with the stream index where serving first answered with its
    version; ``aliases`` maps a version to the aliases it holds at the end. Baseline
    timings are added to the metadata.

    >>> from services.demo.baselines import BaselineResult
    >>> from services.demo.stream import DemoStream
    >>> stream = DemoStream.default(quick=True)
    >>> result = BaselineResult("river_lr", "LR", (True, False) * 4500, 1.5)
    >>> data = build_report(stream, [result])
    >>> data.curves[0].name, data.curves[0].window, len(data.curves[0].rolling)
    ('LR', 300, 299)
    """
    win = window or stream.config.policy.rolling_window
    every = step or max(1, stream.size // 300)
    curves = [] if served is None else [served]
    curves += [Curve.from_flags(b.name, b.correct, window=win, step=every) for b in baselines]
    names = aliases or {}
    info = [
        ModelVersionInfo.from_event(v, aliases=names.get(v.version, ""))
        for v in sorted(versions, key=lambda v: v.version)
    ]
    timings = [(f"baseline time: {b.name}", f"{b.seconds:.1f} s") for b in baselines]
    metric = "accuracy" if stream.config.spec.label.kind == "class" else "mae"
    return ReportData(
        stream=stream.name,
        size=stream.size,
        curves=tuple(curves),
        drifts=stream.drifts,
        detected=tuple(Marker.from_drift(e) for e in drift_events),
        swaps=tuple(Marker.from_alias_move(move, index) for move, index in swaps),
        versions=tuple(info),
        metadata=(
            ("seed", "n/a" if stream.seed is None else str(stream.seed)),
            *metadata,
            *timings,
        ),
        description=stream.description,
        metric=metric,
        tolerance=DEFAULT_TOLERANCE if metric == "accuracy" else ERROR_TOLERANCE,
    )


# -- summary -----------------------------------------------------------------------------


def summarize(
    curves: Iterable[Curve],
    drifts: Sequence[DriftPoint],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    lower_is_better: bool = False,
) -> list[SummaryRow]:
    """The summary table: overall, post-drift metric and recovery per drift.

    ``lower_is_better`` (an error metric): ``tolerance`` is relative to the level before.
    """
    ordered = sorted(drifts, key=lambda d: d.position)
    rows = []
    for curve in curves:
        first = ordered[0].start if ordered else None
        recovery: list[int | None] = []
        for k, drift in enumerate(ordered):
            limit = ordered[k + 1].start if k + 1 < len(ordered) else None
            if k > 0 and recovery[-1] is None:
                recovery.append(None)  # never back from the previous drift: nothing to regain
            else:
                recovery.append(_recovery(curve, drift, limit, tolerance, lower_is_better))
        rows.append(
            SummaryRow(
                curve.name,
                curve.role,
                _accuracy(curve, 0),
                _accuracy(curve, first) if first is not None else None,
                tuple(recovery),
            )
        )
    return rows


def _accuracy(curve: Curve, start: int) -> float | None:
    if curve.cumulative:
        before = [(s, h) for x, s, h in curve.cumulative if x <= start]
        s0, h0 = before[-1] if before else (0, 0)
        _, s1, h1 = curve.cumulative[-1]
        return (h1 - h0) / (s1 - s0) if s1 > s0 else None
    values = [v for x, v in curve.rolling if x - curve.window >= start]
    return sum(values) / len(values) if values else None


def _recovery(
    curve: Curve, drift: DriftPoint, limit: int | None, tolerance: float, lower: bool = False
) -> int | None:
    before = [v for x, v in curve.rolling if x <= drift.start]
    if not before:
        return None
    level = before[-1]
    settled = drift.position if drift.kind == "abrupt" else drift.end
    for x, value in curve.rolling:
        first = x - curve.window  # the window covers examples [first, x)
        if first < settled:
            continue
        if limit is not None and x > limit:
            return None
        if (value <= level * (1 + tolerance)) if lower else (value >= level - tolerance):
            return max(0, first - drift.position)
    return None


def summarize_data(data: ReportData) -> list[SummaryRow]:
    """:func:`summarize` for a report's curves, drifts, tolerance and metric."""
    return summarize(
        data.curves,
        data.drifts,
        tolerance=data.tolerance,
        lower_is_better=data.metric in LOWER_IS_BETTER,
    )
