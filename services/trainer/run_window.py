"""One run's window: the rows read back from the valid topic, chosen and split into
training rows and a holdout, turned into matrices, with the record of where they came
from (the run's ``window`` document)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from schemas import StreamConfig
from schemas.drift import DriftDetected, RetrainRequested
from schemas.lineage import Lineage
from schemas.streams import Spec
from services.common.predictor import Vectorizer
from services.registry.client import TrainingRun
from services.trainer import window
from services.trainer.candidates import Timings
from services.trainer.metrics import TrainerMetrics
from services.trainer.replay import Bounds, ReplayStats
from services.trainer.window import Row

log = logging.getLogger(__name__)


class Replay(Protocol):
    """Where windows come from (the valid topic, through :mod:`services.trainer.replay`)."""

    topic: str

    def bounds(self) -> Bounds:
        """First and next offsets per partition."""

    def read_back(
        self,
        stream: str,
        limits: Bounds,
        *,
        first_step: int,
        enough: Callable[[Sequence[Row], bool], bool],
        stats: ReplayStats,
        spec: Spec | None = None,
    ) -> list[Row]:
        """Rows of ``stream`` read backwards from ``limits.end`` until ``enough``, leaving
        out (and counting in ``stats.skipped``) those that break the contract or ``spec``."""


@dataclass(frozen=True)
class RunWindow:
    """The rows a run trains and judges on, as rows and as matrices."""

    chosen: list[Row]
    train_rows: list[Row]
    holdout: list[Row]
    lineage: Lineage
    vec: Vectorizer
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any] | None]
    doc: dict[str, Any]  # the run's window document: recorded offsets, sizes, digest

    @property
    def y_hold(self) -> np.ndarray:
        """The holdout's labels."""
        return self.data[3]

    @property
    def segments(self) -> list[Any] | None:
        """The holdout's values of the policy's segment feature (None: no segments)."""
        return self.data[4]


def read_window(
    trigger: DriftDetected | RetrainRequested,
    config: StreamConfig,
    run: TrainingRun,
    replay: Replay,
    metrics: TrainerMetrics,
    timings: Timings,
) -> RunWindow:
    """Read the run's window back from the offsets recorded when it started, choose and
    split its rows; raises :class:`~services.trainer.window.WindowTooSmall`."""
    stream, policy = trigger.stream, config.policy
    rp = policy.retrain
    limits = Bounds(
        {int(p): int(o) for p, o in run.window.get("begin", {}).items()},
        {int(p): int(o) for p, o in run.window.get("end", {}).items()},
    )
    requested = trigger.window if isinstance(trigger, RetrainRequested) else None
    mode = "last" if requested is not None else rp.mode
    size_w = requested or rp.window
    drift_time = trigger.event_time if isinstance(trigger, DriftDetected) else None
    stats = ReplayStats()

    def enough(rows: Sequence[Row], exhausted: bool) -> bool:
        return window.enough(
            window.dedupe(rows),
            exhausted,
            mode=mode,
            window=size_w,
            min_size=rp.min_size,
            drift_time=drift_time,
        )

    t0 = time.perf_counter()
    rows = window.dedupe(
        replay.read_back(
            stream,
            limits,
            first_step=int(max(size_w, rp.min_size) * 1.1) + 100,
            enough=enough,
            stats=stats,
            spec=config.spec,
        )
    )
    for reason, count in stats.skipped.items():
        metrics.streams.child(metrics.skipped_rows, stream, reason).inc(count)
    if stats.skipped:
        log.warning(
            "run %s of %s: %d records of the window left out (%s)",
            run.id,
            stream,
            sum(stats.skipped.values()),
            ", ".join(f"{n} {r}" for r, n in sorted(stats.skipped.items())),
        )
    timings.add("replay", stats.read_s)
    timings.add("decode", stats.decode_s)
    count = window.window_size(
        rows, mode=mode, window=size_w, min_size=rp.min_size, drift_time=drift_time
    )
    chosen = window.select(rows, count=count)
    train_rows, holdout = window.split(chosen, holdout_fraction=rp.holdout_fraction)
    lineage = window.lineage(chosen, replay.topic)
    rows_gauge = metrics.streams.gauge(metrics.window_rows, stream)
    if rows_gauge is not None:
        rows_gauge.set(len(chosen))
    log.info(
        "run %s of %s: %d rows (%d train, %d holdout) from %s in %.2fs",
        run.id,
        stream,
        len(chosen),
        len(train_rows),
        len(holdout),
        ", ".join(f"p{r.partition}[{r.start},{r.end})" for r in lineage.ranges),
        time.perf_counter() - t0,
    )
    t1 = time.perf_counter()
    vec = Vectorizer(config.spec.features)
    X_train, y_train = vec.matrix([r.features for r in train_rows]), labels(train_rows)
    X_hold, y_hold = vec.matrix([r.features for r in holdout]), labels(holdout)
    seg = policy.segment_feature
    segments = [r.features.get(seg) for r in holdout] if seg else None
    timings.add("decode", time.perf_counter() - t1)
    doc = {
        **run.window,
        "mode": mode,
        "rows": len(chosen),
        "train_rows": len(train_rows),
        "holdout_rows": len(holdout),
        "rows_sha256": window.digest(chosen),
        "ranges": [r.model_dump(mode="json") for r in lineage.ranges],
        "records_read": stats.records,
        "skipped": dict(sorted(stats.skipped.items())),
    }
    return RunWindow(
        chosen,
        train_rows,
        holdout,
        lineage,
        vec,
        (X_train, y_train, X_hold, y_hold, segments),
        doc,
    )


def labels(rows: Sequence[Row]) -> np.ndarray:
    """The rows' labels as an array scikit-learn accepts (bool, int, float or str)."""
    values = [r.label for r in rows]
    if values and all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float)
    return np.asarray(values, dtype=object)
