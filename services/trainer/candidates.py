"""The candidates of a training run, and the versions they are measured against, each
scored on the run's holdout.

:func:`fit_candidates` fits every candidate of the policy in the pool (or finds the
versions a resumed run registered already), scores it and registers it, and hands each on
as soon as it is ready; :func:`score_version` scores a registered version as it would have
served (an online one prequentially from its snapshot before the holdout, caught up on the
window's rows after that snapshot, as serving's follower learns them), for the champion at the drift
(:func:`champion_at_start`) and the current online model (:func:`online_scored`).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas import Lineage, StreamConfig
from services.common.predictor import Predictor, Vectorizer
from services.registry.client import ModelVersion, Registry, TrainingRun
from services.trainer import gate, train
from services.trainer.fingerprint import canonical, content_sha256, normalized
from services.trainer.window import Row

log = logging.getLogger(__name__)


@dataclass
class Timings:
    """Seconds per phase of one run (for logs, metrics and the benchmark)."""

    phases: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``phase``."""
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


@dataclass
class Candidate:
    """A candidate of a run: its registered version and its holdout score."""

    name: str
    version: ModelVersion
    scored: gate.Scored
    fit_s: float


def fit_candidates(
    registry: Registry,
    pool: cf.Executor,
    *,
    run: TrainingRun,
    config: StreamConfig,
    lineage: Lineage,
    window_doc: dict[str, Any],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any] | None],
    timings: Timings,
) -> Iterator[Candidate]:
    """Fit (or find, when resuming) every candidate, score it and register it; each is
    handed on as soon as it is registered (found ones first, then in the order fits end).

    The fits are submitted to the pool at once, when this is called (the caller can
    score the champion meanwhile); the iterator returned collects them.
    """
    X_train, y_train, X_hold, y_hold, segments = data
    stream, rp = config.stream, config.policy.retrain
    task = config.spec.label.kind
    metric = config.policy.primary_metric_for(task)
    names: list[str] = [n for n in dict.fromkeys(rp.candidates) if train.supports(n, task)]
    done = {
        str(v.params.get("candidate")): v
        for v in registry.list_versions(model=stream, limit=500)
        if v.run_id == run.id
    }
    futures: dict[cf.Future[train.Fitted], str] = {}
    t0 = time.perf_counter()
    for name in names:
        if name not in done:
            futures[
                pool.submit(
                    train.search_and_fit,
                    name,
                    task,
                    X_train,
                    y_train,
                    metric=metric,
                    seed=rp.seed,
                    budget_s=rp.budget_s,
                )
            ] = name

    def collect() -> Iterator[Candidate]:
        """Each candidate as soon as it is ready."""
        for name in names:
            version = done.get(name)
            if version is None:
                continue
            scored = gate.Scored(
                name,
                version.metrics,
                version.evaluation.get("gap"),
                version.evaluation.get("segments", {}),
            )
            yield Candidate(name, version, scored, version.training_duration_s or 0.0)
        reported = 0.0  # of the pool's wall time, added to the "fit" phase so far
        for future in cf.as_completed(futures):
            name = futures[future]
            fitted = future.result()
            fit_wall = time.perf_counter() - t0
            t1 = time.perf_counter()
            model = fitted.model
            proba = (
                model.predict_proba(X_hold)
                if task == "class" and hasattr(model, "predict_proba")
                else None
            )
            preds = [_plain(v) for v in model.predict(X_hold)]
            scored = gate.score_predictions(
                name,
                task,
                metric,
                list(y_hold),
                preds,
                segments,
                proba=proba,
                classes=getattr(model, "classes_", None),
            )
            timings.add("score", time.perf_counter() - t1)
            t2 = time.perf_counter()
            predictor = normalized(
                Predictor.sklearn(
                    model, spec=canonical(config.spec), spec_sha256=config.spec_sha256()
                )
            )
            version = registry.register_version(
                model=stream,
                kind="batch",
                predictor=predictor,
                params={
                    "candidate": name,
                    "estimator": fitted.found.params,
                    "seed": rp.seed,
                    "holdout_fraction": rp.holdout_fraction,
                    "search": {
                        "trials": [
                            {"params": t.params, "rows": t.rows, "score": _finite(t.score)}
                            for t in fitted.found.trials
                        ],
                        "budget_s": rp.budget_s,
                        "budget_hit": fitted.found.budget_hit,
                    },
                    "config_version": config.version,
                },
                metrics={k: v for k, v in scored.metrics.items() if math.isfinite(v)},
                evaluation={
                    "holdout_rows": len(y_hold),
                    "train_rows": len(y_train),
                    "rows_sha256": window_doc["rows_sha256"],
                    "segment_feature": config.policy.segment_feature,
                    "segments": {k: _finite(v) for k, v in scored.segments.items()},
                    "gap": scored.gap,
                    "max_gap": config.policy.max_gap,
                    "model_sha256": content_sha256(predictor),
                    "search_s": fitted.search_s,
                    "final_fit_s": fitted.final_fit_s,
                },
                lineage=lineage,
                run_id=run.id,
                training_duration_s=fitted.fit_s,
                idempotency_key=f"trainer:{run.id}:{name}",
            )
            timings.add("register", time.perf_counter() - t2)
            log.info(
                "run %s: %s v%d %s=%.4f gap=%s fit %.2fs",
                run.id,
                name,
                version.version,
                metric,
                scored.metrics.get(metric, math.nan),
                "n/a" if scored.gap is None else f"{scored.gap:.3f}",
                fitted.fit_s,
            )
            timings.add("fit", fit_wall - reported)
            reported = fit_wall
            yield Candidate(name, version, scored, fitted.fit_s)

    return collect()


def champion_at_start(
    registry: Registry,
    stream: str,
    run: TrainingRun,
    rescore: Callable[[ModelVersion], gate.Scored],
) -> tuple[ModelVersion | None, gate.Scored | None]:
    """The champion live at the drift, scored on the holdout as it would have served."""
    at_start = run.window.get("champion_at_start")
    if at_start is None:
        return None, None
    version = registry.get_version(model=stream, version=int(at_start))
    if version is None:
        return None, None
    return version, rescore(version)


def online_scored(
    registry: Registry,
    stream: str,
    champ_version: ModelVersion | None,
    rescore: Callable[[ModelVersion], gate.Scored],
) -> gate.Scored | None:
    """The current online model scored on the holdout as it would have served, when it
    is not the champion already scored (None: no online model, or it is that one)."""
    online = registry.get_alias(model=stream, alias="online")
    if online is None:
        return None
    if champ_version is not None and champ_version.kind == "online":
        return None  # an online champion is scored from the same snapshots
    version = registry.get_version(model=stream, version=online)
    if version is None or version.status == "archived":
        return None
    return rescore(version)


def score_version(
    registry: Registry,
    stream: str,
    version: ModelVersion,
    holdout: Sequence[Row],
    y_hold: np.ndarray,
    segments: list[Any] | None,
    task: train.Task,
    metric: str,
    vec: Vectorizer,
    before: Sequence[Row] = (),
) -> gate.Scored:
    """``version`` scored on the holdout as it would have served.

    An online version is scored prequentially from the newest online snapshot taken
    before the holdout begins, first taught the window's rows that came after that
    snapshot (``before``: the rows before the holdout, in order), since serving's follower
    learns every example: the online model as fresh as it served, not frozen at its
    snapshot. A batch version by plain prediction.
    """
    snapshot = version
    if version.kind == "online" and holdout:
        first = holdout[0].event_time
        earlier = [
            v
            for v in registry.list_versions(model=stream, limit=500)
            if v.kind == "online"
            and v.status != "archived"  # its artifact was pruned by retention
            and v.lineage.event_time_end is not None
            and v.lineage.event_time_end < first
        ]
        if earlier:
            snapshot = max(earlier, key=lambda v: v.version)
    predictor = registry.load_predictor(model=stream, version=snapshot.version)
    xs = [r.features for r in holdout]
    proba = None
    learned: list[Row] = []
    if predictor.flavor == "river":
        if snapshot.kind == "online":
            learned = after_snapshot(before, snapshot.lineage)
        raw = gate.prequential(
            predictor.model,
            xs,
            list(y_hold),
            learn_first=[(r.features, r.label) for r in learned],
        )
        default = predictor.classes[0] if predictor.classes else 0.0
        preds = [default if p is None else _plain(p) for p in raw]
    else:
        preds = predictor.predict_many(xs)
        if task == "class" and hasattr(predictor.model, "predict_proba"):
            proba = predictor.model.predict_proba(vec.matrix(xs))
    name = f"{version.kind} v{version.version}" + (
        f" (scored from snapshot v{snapshot.version})"
        if snapshot.version != version.version
        else ""
    )
    if predictor.flavor == "river" and learned:
        name += f" (+{len(learned)} examples after its snapshot)"
    classes = getattr(predictor.model, "classes_", None) if proba is not None else None
    return gate.score_predictions(
        name, task, metric, list(y_hold), preds, segments, proba=proba, classes=classes
    )


def after_snapshot(rows: Sequence[Row], lineage: Lineage) -> list[Row]:
    """The ``rows`` an online snapshot with ``lineage`` had not learned yet: those at or
    past the end of its offset range on their partition; on a partition it has no range
    for, those after its newest event time (all of them without one).

    >>> from datetime import datetime, timedelta, timezone
    >>> from schemas import OffsetRange
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> rows = [Row(p, o, f"{p}-{o}", {}, 0, t + timedelta(seconds=o)) for p in (0, 1)
    ...         for o in (8, 9, 10, 11)]
    >>> seen = Lineage(ranges=(OffsetRange(topic="v", partition=0, start=0, end=10),),
    ...                event_time_start=t, event_time_end=t + timedelta(seconds=8))
    >>> [r.example_id for r in after_snapshot(rows, seen)]
    ['0-10', '0-11', '1-9', '1-10', '1-11']
    """
    ends: dict[int, int] = {}
    for r in lineage.ranges:
        ends[r.partition] = max(ends.get(r.partition, 0), r.end)
    newest = lineage.event_time_end
    return [
        row
        for row in rows
        if (
            row.offset >= ends[row.partition]
            if row.partition in ends
            else newest is None or row.event_time > newest
        )
    ]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
