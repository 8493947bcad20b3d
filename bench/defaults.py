"""``bench defaults``: the online model ``spec infer`` writes, against in-process River.

For every stream of :mod:`bench.default_streams`, a config is inferred from the rows (as
``driftline spec infer`` does from a file) and its model is built by the learner's own
pipeline builder; it and each baseline are then scored prequentially (predict, then
learn, one example at a time, as River's ``progressive_val_score``) on the same rows:

- class labels: the majority class, ``StandardScaler | LogisticRegression``,
  ``HoeffdingAdaptiveTreeClassifier``, ``ARFClassifier(n_models=10)`` and
  ``DriftRetrainingClassifier(HoeffdingTreeClassifier, DDM)``; accuracy;
- number labels: the mean, ``LinearRegression``, ``HoeffdingAdaptiveTreeRegressor`` and
  ``ARFRegressor``, each behind ``StandardScaler``; mean absolute error.

Each stream gets a score relative to its best baseline (accuracy over the best accuracy,
or the best MAE over the MAE), overall and after the first drift. The headline value is
the default's mean relative score over streams and seeds; the baseline is the best mean
any single baseline reaches the same way. The default's examples/s, memory and pickled
size are measured on the same run. Quick: 7 streams, 1 seed, 2,000 rows (about 2 min on
one core); full: 15 streams, 2 seeds, 6,000 rows.
"""

from __future__ import annotations

import math
import pickle
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from river import drift, dummy, stats, tree

from bench.default_streams import QUICK, STREAMS, BenchStream, Row
from bench.harness import Result
from schemas.streams import ModelSpec, Spec
from services.ingest.infer import infer_config
from services.learner.pipeline import build_pipeline

CLASS_BASELINES: dict[str, str | None] = {
    "majority": None,
    "logistic": "preprocessing.StandardScaler | linear_model.LogisticRegression",
    "hat": "tree.HoeffdingAdaptiveTreeClassifier",
    "arf10": "forest.ARFClassifier",
    "drift_retrain": None,
}
NUMBER_BASELINES: dict[str, str | None] = {
    "mean": None,
    "linear": "preprocessing.StandardScaler | linear_model.LinearRegression",
    "hat": "preprocessing.StandardScaler | tree.HoeffdingAdaptiveTreeRegressor",
    "arf10": "preprocessing.StandardScaler | forest.ARFRegressor",
}


@dataclass
class Scored:
    """One model's prequential run on one stream."""

    name: str
    overall: float
    after: float | None
    seconds: float
    examples: int
    memory: int
    snapshot: int


def build(name: str, spec: Spec, seed: int) -> Any:
    """A baseline by name, through the learner's builder where River allows it."""
    kind = spec.label.kind
    table = CLASS_BASELINES if kind == "class" else NUMBER_BASELINES
    path = table[name]
    if path is not None:
        params = {"n_models": 10} if "ARF" in path else {}
        steps = [{"estimator": s.strip()} for s in path.split("|")]
        steps[-1]["params"] = params  # type: ignore[assignment]
        return build_pipeline(ModelSpec.model_validate({"pipeline": steps, "seed": seed}), spec)
    if name == "majority":
        return dummy.PriorClassifier()
    if name == "mean":
        return dummy.StatisticRegressor(stats.Mean())
    return drift.DriftRetrainingClassifier(
        model=tree.HoeffdingTreeClassifier(), drift_detector=drift.binary.DDM()
    )


def prequential(name: str, model: Any, rows: Sequence[Row], kind: str, after: int | None) -> Scored:
    """Predict then learn each row; accuracy (class) or MAE (number), overall and after."""
    losses: list[float] = []
    started = time.process_time()  # CPU time: the machine may be shared
    for x, y in rows:
        p = model.predict_one(x)
        if kind == "class":
            losses.append(0.0 if p == y else 1.0)
        else:
            losses.append(abs(float(y) - float(p)) if p is not None else abs(float(y)))
        model.learn_one(x, y)
    seconds = time.process_time() - started

    def value(part: Sequence[float]) -> float:
        mean = statistics.fmean(part) if part else math.nan
        return 1.0 - mean if kind == "class" else mean

    return Scored(
        name,
        value(losses),
        value(losses[after:]) if after is not None else None,
        seconds,
        len(rows),
        int(getattr(model, "_raw_memory_usage", 0)),
        len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)),
    )


def relative(kind: str, value: float, best: float) -> float:
    """A score relative to the best baseline's: above 1 is better than it."""
    if kind == "class":
        return value / best if best > 0 else 1.0
    return best / value if value > 0 else (1.0 if best == 0 else math.inf)


def score_stream(stream: BenchStream, n: int, seed: int) -> tuple[Scored, list[Scored], int]:
    """The default and the baselines on one stream; also the rows' count."""
    rows = list(stream.rows(n, seed=seed))
    drifts = stream.drifts(len(rows))
    after = drifts[0] if drifts else None
    config = infer_config(stream.name, rows).config
    kind = config.spec.label.kind
    default = prequential("default", build_pipeline(config.model, config.spec), rows, kind, after)
    names = CLASS_BASELINES if kind == "class" else NUMBER_BASELINES
    baselines = [
        prequential(name, build(name, config.spec, seed), rows, kind, after) for name in names
    ]
    return default, baselines, len(rows)


def run(quick: bool, log: Callable[[str], None] | None = None) -> Result:
    """Score every stream; the headline is the default's mean relative score."""
    names = QUICK if quick else tuple(STREAMS)
    seeds = (1,) if quick else (1, 2)
    n = 2000 if quick else 6000
    rows_out: list[list[Any]] = []
    rel_default: list[float] = []
    rel_by_baseline: dict[str, list[float]] = {}
    speeds: list[float] = []
    memories: list[int] = []
    snapshots: list[int] = []
    for name in names:
        stream = STREAMS[name]
        per_seed: list[tuple[Scored, list[Scored]]] = []
        for seed in seeds:
            default, baselines, count = score_stream(stream, n, seed)
            per_seed.append((default, baselines))
            if log:
                log(f"{name} seed {seed}: {count} rows")
        kind = stream.kind
        metric = "accuracy" if kind == "class" else "MAE"
        for default, baselines in per_seed:
            best = _best(kind, [b.overall for b in baselines])
            rel_default.append(relative(kind, default.overall, best))
            for b in baselines:
                rel_by_baseline.setdefault(b.name, []).append(relative(kind, b.overall, best))
            speeds.append(default.examples / default.seconds)
            memories.append(default.memory)
            snapshots.append(default.snapshot)
        default_overall = statistics.fmean(d.overall for d, _ in per_seed)
        afters = [d.after for d, _ in per_seed if d.after is not None]
        best_name, best_overall = _best_named(kind, per_seed)
        best_after = _best_after(kind, per_seed)
        rows_out.append(
            [
                name,
                metric,
                f"{default_overall:.3f}",
                f"{best_overall:.3f} ({best_name})",
                "-" if not afters else f"{statistics.fmean(afters):.3f}",
                "-" if best_after is None else f"{best_after[1]:.3f} ({best_after[0]})",
                "  ".join(
                    f"{b.name}={statistics.fmean(ps[1][i].overall for ps in per_seed):.3f}"
                    for i, b in enumerate(per_seed[0][1])
                ),
                f"{statistics.fmean(d.examples / d.seconds for d, _ in per_seed):.0f}",
                f"{max(d.memory for d, _ in per_seed) / 1e6:.1f}",
                f"{max(d.snapshot for d, _ in per_seed) / 1e6:.2f}",
            ]
        )
    value = statistics.fmean(rel_default)
    best_single = max(rel_by_baseline, key=lambda k: statistics.fmean(rel_by_baseline[k]))
    baseline = statistics.fmean(rel_by_baseline[best_single])
    rows_out.append(
        [
            "mean relative score",
            "",
            f"{value:.4f}",
            f"{baseline:.4f} ({best_single})",
            "",
            "",
            f"worst stream: {min(rel_default):.4f}",
            f"{statistics.fmean(speeds):.0f}",
            f"{max(memories) / 1e6:.1f}",
            f"{max(snapshots) / 1e6:.2f}",
        ]
    )
    return Result(
        bench="defaults",
        value=value,
        unit="score relative to the best baseline per stream",
        baseline=baseline,
        rows=rows_out,
        columns=(
            "stream",
            "metric",
            "default",
            "best baseline",
            "default after drift",
            "best after drift",
            "baselines",
            "default ex/s",
            "default MB",
            "snapshot MB",
        ),
        extra={
            "worst_stream_ratio": round(min(rel_default), 4),
            "best_single_baseline": best_single,
            "default_examples_per_s": round(statistics.fmean(speeds)),
        },
    )


def _best(kind: str, values: Sequence[float]) -> float:
    return max(values) if kind == "class" else min(values)


def _best_named(kind: str, per_seed: list[tuple[Scored, list[Scored]]]) -> tuple[str, float]:
    means = {
        b.name: statistics.fmean(ps[1][i].overall for ps in per_seed)
        for i, b in enumerate(per_seed[0][1])
    }
    pick = max if kind == "class" else min
    name = pick(means, key=lambda k: means[k])
    return name, means[name]


def _best_after(kind: str, per_seed: list[tuple[Scored, list[Scored]]]) -> tuple[str, float] | None:
    if per_seed[0][0].after is None:
        return None
    means = {
        b.name: statistics.fmean(float(ps[1][i].after or 0.0) for ps in per_seed)
        for i, b in enumerate(per_seed[0][1])
    }
    pick = max if kind == "class" else min
    name = pick(means, key=lambda k: means[k])
    return name, means[name]
