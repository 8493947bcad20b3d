"""The demo's HTML report: one self-contained file, viewable with no network. Pure.

Inputs are plain data (:class:`ReportData`): accuracy curves (the served model's, from the
evaluator's metric snapshots, and the baselines'), the true drift points, detected drift
events, swaps and the model versions with their lineage. :func:`summarize` computes the
summary table; :func:`render_html` draws an inline SVG chart (no JavaScript, no external
CSS, fonts or images) and the tables.

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

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    "render_html",
    "summarize",
    "write_report",
]

Role = Literal["served", "baseline"]
DEFAULT_TOLERANCE = 0.05
ERROR_TOLERANCE = 0.1  # relative, for error metrics (MAE)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss"})

_W, _H = 960, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 20, 34, 44
_SERVED_COLOR = "#111111"
_PALETTE = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
_DRIFT_COLOR = "#666666"
_DETECTED_COLOR = "#d62728"
_SWAP_COLOR = "#2ca02c"


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


# -- HTML --------------------------------------------------------------------------------


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (inline SVG and CSS, no external resource)."""
    rows = summarize_data(data)
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(data.title)}: {e(data.stream)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
        f'<p class="lead">Stream <b>{e(data.stream)}</b>, {data.size:,} examples. '
        f"{e(data.description)}</p>",
        f"<h2>{'Accuracy' if data.metric == 'accuracy' else e(data.metric.upper())} "
        "over the stream</h2>",
        _chart(data),
        _legend(data),
        "<h2>Summary</h2>",
        _summary_table(rows, data),
        "<h2>Model versions</h2>",
        _versions_table(data.versions),
        "<h2>Run</h2>",
        _metadata_table(data),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: Path, data: ReportData) -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;"
    "max-width:1000px;color:#222;padding:0 1em}"
    "h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;font-size:.9em;margin:.5em 0}"
    "th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.served td{font-weight:600}.lead{color:#444}.note{color:#666;font-size:.85em}"
    ".legend span{display:inline-block;margin-right:1.2em;font-size:.9em}"
    ".legend i{display:inline-block;width:1.4em;height:.25em;vertical-align:middle;"
    "margin-right:.4em}svg text{font-family:inherit;font-size:11px;fill:#444}"
)


def _colors(curves: Sequence[Curve]) -> list[str]:
    colors = []
    k = 0
    for curve in curves:
        if curve.role == "served":
            colors.append(_SERVED_COLOR)
        else:
            colors.append(_PALETTE[k % len(_PALETTE)])
            k += 1
    return colors


def _nice_step(span: float, ticks: int = 8) -> int:
    raw = max(1.0, span / ticks)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return int(factor * power)
    return int(10 * power)


def _chart(data: ReportData) -> str:
    size = max(1, data.size)
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + plot_w * min(max(x, 0.0), size) / size

    top = _y_top(data)

    def sy(y: float) -> float:
        return _TOP + plot_h * (1.0 - min(max(y / top, 0.0), 1.0))

    e = html.escape
    out = [
        f'<svg id="chart" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
        f'aria-label="rolling accuracy against example index">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for k in range(6):
        y = top * k / 5
        tick = f"{y:.0%}" if data.metric == "accuracy" else f"{y:.3g}"
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{_LEFT - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    step = _nice_step(size)
    for x in range(0, size + 1, step):
        out.append(
            f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{_TOP + plot_h}" '
            f'y2="{_TOP + plot_h + 4}" stroke="#999"/>'
            f'<text x="{sx(x):.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle">{x:,}</text>'
        )
    out.append(
        f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_H - 6}" text-anchor="middle">example index</text>'
    )
    for drift in data.drifts:
        label = f"{drift.kind} drift at {drift.position:,}"
        if drift.kind == "gradual" and drift.width > 1:
            out.append(
                f'<rect class="true-drift" x="{sx(drift.start):.1f}" y="{_TOP}" '
                f'width="{max(1.0, sx(drift.end) - sx(drift.start)):.1f}" height="{plot_h}" '
                f'fill="{_DRIFT_COLOR}" fill-opacity="0.12"><title>{e(label)} '
                f"(over {drift.width:,} examples)</title></rect>"
            )
        out.append(
            f'<line class="true-drift" x1="{sx(drift.position):.1f}" '
            f'x2="{sx(drift.position):.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_DRIFT_COLOR}" stroke-dasharray="6 4" stroke-width="1.5">'
            f"<title>{e(label)}</title></line>"
            f'<text x="{sx(drift.position) + 4:.1f}" y="{_TOP - 6}">{e(label)}</text>'
        )
    for curve, color in zip(data.curves, _colors(data.curves), strict=True):
        if not curve.rolling:
            continue
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve.rolling)
        width = 2.5 if curve.role == "served" else 1.5
        out.append(
            f'<polyline class="curve" points="{points}" fill="none" stroke="{color}" '
            f'stroke-width="{width}" stroke-linejoin="round"><title>{e(curve.name)}</title>'
            "</polyline>"
        )
    for marker in data.detected:
        at = sx(marker.index)
        out.append(
            f'<g class="detected-drift"><title>{e(marker.detail or marker.label)} '
            f"(example {marker.index:,})</title>"
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_DETECTED_COLOR}" stroke-dasharray="2 3"/>'
            f'<path d="M{at - 5:.1f},{_TOP} L{at + 5:.1f},{_TOP} L{at:.1f},{_TOP + 8}Z" '
            f'fill="{_DETECTED_COLOR}"/></g>'
        )
    for marker in data.swaps:
        at = sx(marker.index)
        out.append(
            f'<g class="swap"><title>{e(marker.detail or marker.label)} '
            f"(example {marker.index:,})</title>"
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{_TOP}" y2="{_TOP + plot_h}" '
            f'stroke="{_SWAP_COLOR}" stroke-width="1.5"/>'
            f'<text x="{at + 3:.1f}" y="{_TOP + plot_h - 6}" style="fill:{_SWAP_COLOR}">'
            f"{e(marker.label)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _y_top(data: ReportData) -> float:
    """The chart's top value: 1 for accuracy, above the largest value for an error."""
    if data.metric == "accuracy":
        return 1.0
    values = [v for curve in data.curves for _, v in curve.rolling if math.isfinite(v)]
    return max(values) * 1.1 if values and max(values) > 0 else 1.0


def _legend(data: ReportData) -> str:
    e = html.escape
    items = [
        f'<span><i style="background:{color}"></i>{e(curve.name)}'
        f"{' (served)' if curve.role == 'served' else ''}</span>"
        for curve, color in zip(data.curves, _colors(data.curves), strict=True)
    ]
    items += [
        f'<span><i style="background:{_DRIFT_COLOR}"></i>true drift</span>',
        f'<span><i style="background:{_DETECTED_COLOR}"></i>detected drift</span>',
        f'<span><i style="background:{_SWAP_COLOR}"></i>swap (served version)</span>',
    ]
    windows = sorted({c.window for c in data.curves})
    note = (
        f'<p class="note">Rolling {_name(data)} over the last '
        f"{', '.join(f'{w:,}' for w in windows)}"
        " examples, by example index in the stream.</p>"
    )
    return f'<div class="legend">{"".join(items)}</div>{note}'


def _name(data: ReportData) -> str:
    return "accuracy" if data.metric == "accuracy" else data.metric.upper()


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.4g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _summary_table(rows: Sequence[SummaryRow], data: ReportData) -> str:
    e = html.escape
    fmt = _pct if data.metric == "accuracy" else _number
    drifts = sorted(data.drifts, key=lambda d: d.position)
    head = "".join(
        f"<th>recovery after {e(d.kind)} drift at {d.position:,} (examples)</th>" for d in drifts
    )
    body = []
    for row in rows:
        recovery = "".join(
            f'<td class="n">{"not recovered" if r is None else f"{r:,}"}</td>' for r in row.recovery
        )
        body.append(
            f'<tr class="{row.role}"><td>{e(row.name)}</td><td>{e(row.role)}</td>'
            f'<td class="n">{fmt(row.overall)}</td><td class="n">{fmt(row.post_drift)}</td>'
            f"{recovery}</tr>"
        )
    note = (
        '<p class="note">Post-drift: examples from the first drift on. Recovery: examples '
        "from a drift (the centre of a gradual one) to the first rolling window, entirely "
        f"after the transition, whose {_name(data)} is within {data.tolerance * 100:.0f} "
        f"{'points' if data.metric == 'accuracy' else '%'} of the model's own level just "
        "before it; not recovered when that does not happen "
        "before the next drift (nor after a drift it did not recover from).</p>"
        if drifts
        else ""
    )
    return (
        '<table id="summary"><thead><tr><th>model</th><th>role</th>'
        f"<th>overall {_name(data)}</th><th>post-drift {_name(data)}</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody>"
        f"</table>{note}"
    )


def _versions_table(versions: Sequence[ModelVersionInfo]) -> str:
    if not versions:
        return '<p class="note">No model version was recorded.</p>'
    e = html.escape
    body = []
    for v in sorted(versions, key=lambda v: v.version):
        metrics = ", ".join(f"{k} {val:.4g}" for k, val in sorted(v.metrics.items()))
        body.append(
            f'<tr><td class="n">v{v.version}</td><td>{e(v.kind)}</td><td>{e(v.algorithm)}</td>'
            f'<td class="n">{"" if v.parent is None else f"v{v.parent}"}</td>'
            f"<td>{e(v.aliases)}</td><td>{e(metrics)}</td>"
            f'<td class="n">{v.example_count:,}</td><td>{e(v.lineage)}</td></tr>'
        )
    return (
        '<table id="versions"><thead><tr><th>version</th><th>kind</th><th>algorithm</th>'
        "<th>parent</th><th>aliases</th><th>metrics</th><th>examples</th>"
        "<th>lineage (half-open offset ranges)</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _metadata_table(data: ReportData) -> str:
    e = html.escape
    items = [
        ("stream", data.stream),
        ("examples", f"{data.size:,}"),
        *(
            (f"true drift {k + 1}", f"{d.kind} at {d.position:,} (width {d.width:,})")
            for k, d in enumerate(data.drifts)
        ),
        ("detected drift events", str(len(data.detected))),
        ("swaps", str(len(data.swaps))),
        ("model versions", str(len(data.versions))),
        *data.metadata,
    ]
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in items)
    return f'<table id="run"><tbody>{body}</tbody></table>'
