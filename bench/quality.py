"""Served quality across streams: the real loop against in-process River, row for row.

Each stream of the suite (:mod:`bench.quality_streams`) runs through the whole loop as
``driftline demo`` runs it (a broker, the six services as subprocesses, its config
exactly as ``driftline spec infer`` writes it, prediction requests before their labels).
Then, in this process, on exactly the rows the loop learned (the valid topic's ids, in
its order), every baseline that fits the label is scored prequentially
(:mod:`services.demo.baselines`: majority / mean, a static model, River's
LogisticRegression / LinearRegression, HoeffdingAdaptiveTree, ARF(10) and, for classes,
DriftRetrainingClassifier).

Served means the answer serving gave for a row before its label reached the loop (the
prediction's record time is not after the valid example's). Each metric is taken over the
served rows from the first drift on (all served rows when the stream has no known drift),
for driftline and for every baseline alike. A stream's score is served ÷ best baseline
(accuracy), or best baseline ÷ served (MAE), so above 1 means driftline wins. The JSON
line's value is the minimum score over the streams; its baseline is 1.0 (parity with the
best in-process baseline).

Also per stream: accuracy/MAE after each drift (served, best baseline), retrains per
drift (batch versions trained), detection delay (examples from a drift to the first
drift event after it), served staleness (examples between the learner's position and the
answering model's, p50/p99) and learner lag (examples between the replay and the
learner, p50/p99).

``--quick``: 4 streams (binary, multi-class, regression, real) of 5,000 rows or fewer,
one seed. Full: every stream, three seeds for the synthetic ones (their mean). A stream
with no served row (one shorter than the first online version) scores 0: what a user of
the inferred config would get.
"""

from __future__ import annotations

import bisect
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from bench.harness import Result, Stopwatch, broker_settings
from bench.quality_streams import CASES, QUICK, Case
from services.common.errors import DriftlineError
from services.common.settings import DriftlineSettings
from services.demo.baselines import BaselineResult, run_baselines
from services.demo.run import DemoOptions, LoopOutcome, run_loop
from services.demo.state import DemoState
from services.demo.stream import DemoStream

QUICK_SIZE = 5000
FULL_SIZE = 8000
FULL_SEEDS = (1, 2, 3)


@dataclass
class StreamScore:
    """One stream run's numbers."""

    stream: str
    seed: int | None
    metric: str
    rows: int
    served_rows: int
    answered_rows: int  # answered at all; served ones came before their label
    served_overall: float | None
    served_after: float | None
    best_name: str
    best_after: float | None
    baselines_after: dict[str, float | None]
    per_drift: list[tuple[float | None, float | None]]  # (served, best baseline) per drift
    score: float
    retrains_per_drift: float | None
    detection_delay: list[int | None]
    staleness: tuple[float, float] | None
    lag: tuple[float, float] | None
    seconds: float
    checks_failed: list[str] = field(default_factory=list)


def _same(predicted: Any, label: Any) -> bool:
    return bool(predicted == label) and isinstance(predicted, bool) == isinstance(label, bool)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pcts(values: Sequence[float]) -> tuple[float, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _model_position(state: DemoState, version: int) -> int | None:
    """Examples of the stream version ``version`` learned (its lineage's end offset)."""
    published = state.versions.get(version)
    if published is None or not published.lineage.ranges:
        return None
    return max(r.end for r in published.lineage.ranges)


def score_run(source: DemoStream, outcome: LoopOutcome, seconds: float, seed: int) -> StreamScore:
    """Compare what the loop served with the baselines on the same rows."""
    state = outcome.state
    spec = source.config.spec
    number = spec.label.kind == "number"
    metric = "mae" if number else "accuracy"
    by_id = {i: (x, y) for i, x, y in source.identified()}
    order = [i for i in state.valid_order if i in by_id]
    rows = [by_id[i] for i in order]
    index = [state.index_of.get(i, k) for k, i in enumerate(order)]
    baselines = run_baselines(rows, spec, seed=seed)

    served: dict[int, float] = {}
    stale: list[float] = []
    samples = outcome.samples
    times = [s.at_ms for s in samples]
    for k, ident in enumerate(order):
        answer = state.answers.get(ident)
        label_at = state.valid_at.get(ident)
        if answer is None or answer.at_ms is None or label_at is None or answer.at_ms > label_at:
            continue
        y = rows[k][1]
        served[k] = (
            abs(float(y) - float(answer.prediction))
            if number
            else (1.0 if _same(answer.prediction, y) else 0.0)
        )
        position = answer.learned_examples
        if position is None:
            position = _model_position(state, answer.version)
        at = bisect.bisect_right(times, answer.at_ms) - 1
        if position is not None and at >= 0:
            stale.append(max(0, samples[at].learned - position))

    drifts = sorted(source.drifts, key=lambda d: d.position)
    first = drifts[0].start if drifts else 0
    after = [k for k in served if index[k] >= first]

    def value(result: BaselineResult | None, keys: Sequence[int]) -> float | None:
        if result is None:
            return _mean([served[k] for k in keys])
        return result.over(keys)

    sign = -1.0 if number else 1.0
    scored = {b.name: value(b, after) for b in baselines}
    candidates = [(n, v) for n, v in scored.items() if v is not None]
    best_name, best = max(candidates, key=lambda nv: sign * nv[1]) if candidates else ("-", None)
    best_result = next((b for b in baselines if b.name == best_name), None)
    mine = value(None, after)
    if mine is None or best is None:
        score = 0.0
    elif number:
        score = best / mine if mine > 0 else (1.0 if best == 0 else float("inf"))
    else:
        score = mine / best if best > 0 else 1.0

    per_drift = []
    for j, drift in enumerate(drifts):
        end = drifts[j + 1].start if j + 1 < len(drifts) else None
        keys = [k for k in served if index[k] >= drift.start and (end is None or index[k] < end)]
        per_drift.append((value(None, keys), value(best_result, keys)))

    positions = sorted(index)
    delays: list[int | None] = []
    for j, drift in enumerate(drifts):
        end = drifts[j + 1].start if j + 1 < len(drifts) else None
        found = None
        for event in state.drifts:
            count = event.example_count
            at = positions[min(count, len(positions)) - 1] + 1 if count > 0 and positions else 0
            if at >= drift.start and (end is None or at < end):
                found = max(0, at - drift.position)
                break
        delays.append(found)
    batch = sum(1 for v in state.versions.values() if v.kind == "batch")
    return StreamScore(
        stream=source.name,
        seed=source.seed,
        metric=metric,
        rows=len(rows),
        served_rows=len(served),
        answered_rows=sum(1 for i in order if i in state.answers),
        served_overall=value(None, list(served)),
        served_after=mine,
        best_name=best_name,
        best_after=best,
        baselines_after=scored,
        per_drift=per_drift,
        score=score,
        retrains_per_drift=batch / len(drifts) if drifts else None,
        detection_delay=delays,
        staleness=_pcts(stale),
        lag=_pcts([float(s.lag) for s in samples]),
        seconds=seconds,
        checks_failed=[f"{c.name}: {c.detail}" for c in outcome.checks if c.required and not c.ok],
    )


def run_stream(
    settings: DriftlineSettings, case: Case, *, seed: int, size: int, console: Console
) -> StreamScore:
    """One stream through the loop (its own topics and registry), then scored."""
    source = case.stream(seed=seed, size=size)
    log = Console(file=io.StringIO(), width=120)
    with Stopwatch() as watch:
        options = DemoOptions(quick=True, live=False, baselines=False, seed=seed)
        try:
            outcome = run_loop(settings, options, log, source=source)
        except DriftlineError as exc:  # one stream's failure is its score (0), not the end
            console.print(f"{case.name} (seed {seed}) failed: {exc}", markup=False)
            console.print(log.file.getvalue()[-2000:], markup=False)  # type: ignore[attr-defined]
            return _failed(source, seed, watch.seconds, str(exc))
    result = score_run(source, outcome, watch.seconds, seed)
    console.print(_line(result), markup=False, soft_wrap=True)
    return result


def _failed(source: DemoStream, seed: int, seconds: float, error: str) -> StreamScore:
    number = source.config.spec.label.kind == "number"
    return StreamScore(
        stream=source.name,
        seed=seed,
        metric="mae" if number else "accuracy",
        rows=source.size,
        served_rows=0,
        answered_rows=0,
        served_overall=None,
        served_after=None,
        best_name="-",
        best_after=None,
        baselines_after={},
        per_drift=[(None, None)] * len(source.drifts),
        score=0.0,
        retrains_per_drift=None,
        detection_delay=[None] * len(source.drifts),
        staleness=None,
        lag=None,
        seconds=seconds,
        checks_failed=[f"the run failed: {error}"],
    )


def _line(s: StreamScore) -> str:
    return json.dumps(
        {
            "stream": s.stream,
            "seed": s.seed,
            "metric": s.metric,
            "served_after": s.served_after,
            "best": s.best_name,
            "best_after": s.best_after,
            "score": s.score,
            "served_rows": s.served_rows,
            "answered_rows": s.answered_rows,
            "rows": s.rows,
            "baselines_after": s.baselines_after,
            "per_drift": s.per_drift,
            "retrains_per_drift": s.retrains_per_drift,
            "detection_delay": s.detection_delay,
            "staleness": s.staleness,
            "lag": s.lag,
            "seconds": round(s.seconds, 1),
            "checks_failed": s.checks_failed,
        }
    )


def _avg(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if metric == "accuracy" else f"{value:.3g}"


def table(scores: list[StreamScore]) -> list[list[Any]]:
    """One row per stream (the mean over its seeds)."""
    out = []
    for name in dict.fromkeys(s.stream for s in scores):
        runs = [s for s in scores if s.stream == name]
        metric = runs[0].metric
        keys = next((list(r.baselines_after) for r in runs if r.baselines_after), [])
        width = 5 if metric == "mae" else 6  # the baselines that fit the label
        drifts = len(runs[0].per_drift)
        per_drift = ", ".join(
            f"{_fmt(_avg([r.per_drift[j][0] for r in runs]), metric)}"
            f" vs {_fmt(_avg([r.per_drift[j][1] for r in runs]), metric)}"
            for j in range(drifts)
        )
        delays = ", ".join(
            "missed"
            if not [r.detection_delay[j] for r in runs if r.detection_delay[j] is not None]
            else f"{_avg([r.detection_delay[j] for r in runs]):,.0f}"
            for j in range(drifts)
        )
        out.append(
            [
                name,
                len(runs),
                metric,
                f"{_avg([r.served_rows / max(1, r.rows) for r in runs]):.0%}",
                _fmt(_avg([r.served_overall for r in runs]), metric),
                _fmt(_avg([r.served_after for r in runs]), metric),
                *(_fmt(_avg([r.baselines_after.get(k) for r in runs]), metric) for k in keys),
                *(["-"] * (width - len(keys))),
                per_drift or "-",
                _fmt(_avg([r.score for r in runs]), "accuracy"),
                "-"
                if runs[0].retrains_per_drift is None
                else f"{_avg([r.retrains_per_drift for r in runs]):.1f}",
                delays or "-",
                _pair([r.staleness for r in runs]),
                _pair([r.lag for r in runs]),
            ]
        )
    return out


def _pair(values: list[tuple[float, float] | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    return (
        f"{statistics.mean(v[0] for v in known):,.0f} / {statistics.mean(v[1] for v in known):,.0f}"
    )


COLUMNS = (
    "stream",
    "seeds",
    "metric",
    "served rows",
    "served overall",
    "served after drift",
    "majority / mean",
    "static",
    "River LR",
    "River HAT",
    "River ARF",
    "River DDM (classes)",
    "after each drift: served vs best",
    "score",
    "retrains / drift",
    "detection delay",
    "staleness p50/p99",
    "learner lag p50/p99",
)


def _row(row: list[Any], metric: str) -> list[Any]:
    """Pad a number label's row (no DDM baseline) to the table's columns."""
    if metric == "mae":
        return [*row[:11], "n/a", *row[11:]]
    return row


def run(quick: bool, names: Sequence[str] | None = None) -> Result:
    """Run the suite (or the named streams); the value is the minimum score over them."""
    console = Console(stderr=True)
    names = names or (QUICK if quick else tuple(CASES))
    scores: list[StreamScore] = []
    size = QUICK_SIZE if quick else FULL_SIZE
    # one pass per seed over the streams (data sets in the first only), so that a run
    # stopped early has covered every stream once
    passes = [
        (seed, [CASES[n] for n in names if k == 0 or CASES[n].synthetic])
        for k, seed in enumerate((FULL_SEEDS[0],) if quick else FULL_SEEDS)
    ]
    with broker_settings() as settings:
        for seed, cases in passes:
            for case in cases:
                scores.append(run_stream(settings, case, seed=seed, size=size, console=console))
    rows = [_row(r, r[2]) for r in table(scores)]
    per_stream: dict[str, list[float]] = {}
    for s in scores:
        per_stream.setdefault(s.stream, []).append(s.score)
    means = {k: sum(v) / len(v) for k, v in per_stream.items()}
    worst = min(means, key=lambda k: means[k])
    return Result(
        bench="quality",
        value=means[worst],
        unit="served / best baseline (min over streams)",
        baseline=1.0,
        rows=rows,
        columns=COLUMNS,
        extra={"worst": worst, "streams": len(means)},
    )
