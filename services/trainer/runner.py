"""One training run, from a drift event to an alias move: the trainer's work, without faust.

:class:`Trainer.handle` is synchronous and idempotent per trigger event; the faust edge
(:mod:`services.trainer.app`) calls it in a thread, and it sends the CPU-heavy fits to a
process pool. Every step can be repeated after a crash:

- the run id is derived from the trigger's event id (``Registry.start_run``) and the
  window's end offsets are recorded when the run starts, so a resumed run replays the
  same rows;
- candidate versions are registered under ``trainer:<run id>:<candidate>``; a resumed
  run finds the versions it already registered and does not refit them;
- the alias move names the run in its evidence; a resumed run that finds its own move in
  the alias history does not move again, so the ``models`` topic hears of it once;
- a winner moves as soon as it is fitted (the slowest candidate does not hold a fresh
  model back); a candidate fitted later moves only if it beats that winner too.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

from schemas import StreamConfig
from schemas.drift import DriftDetected, RetrainRequested
from schemas.streams import Spec
from services.common.errors import BrokerError, DataExpired, DriftlineError
from services.common.predictor import Vectorizer
from services.registry.client import (
    ModelVersion,
    Registry,
    RegistryUnavailable,
    TrainingRun,
)
from services.trainer import gate, promotion, window
from services.trainer.candidates import (
    Candidate,
    Timings,
    champion_at_start,
    fit_candidates,
    online_scored,
    score_version,
)
from services.trainer.metrics import TrainerMetrics
from services.trainer.replay import Bounds, ReplayStats
from services.trainer.window import Row

log = logging.getLogger(__name__)

SERVICE = "trainer"
Trigger = DriftDetected | RetrainRequested
Outcome = Literal[
    "promoted",
    "rejected",
    "frozen",
    "conflict",
    "too_small",
    "duplicate",
    "coalesced",
    "reported",
    "superseded",
]


class UnknownStream(DriftlineError):
    """A trigger for a stream without a published config."""


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
class Result:
    """What :meth:`Trainer.handle` did."""

    outcome: Outcome
    run_id: str | None = None
    winner_version: int | None = None
    decision: str = ""
    timings: Timings = field(default_factory=Timings)


class Trainer:
    """Turns drift events into training runs, candidate versions and a gated alias move.

    Parameters
    ----------
    registry
        The registry (runs, versions, aliases; its outbox announces moves on ``models``).
    configs
        Stream name -> its current config (None: unknown).
    replay
        Reads windows from the valid topic.
    pool
        Where candidates are fitted (a process pool; a thread pool in unit tests).
    metrics
        Prometheus metrics.
    pause
        Testing hook: called with the step name ("registered", "moved") of every run.
    newer_drift
        ``(stream, after)`` -> whether a drift that retrains was detected on ``stream`` at
        an example later than ``after`` (the drift topic's tail; None: never asked). A
        scheduled run whose window ends before such a drift does not move an alias: the
        drift's own run, on post-drift data, follows it.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        configs: Callable[[str], StreamConfig | None],
        replay: Replay,
        pool: cf.Executor,
        metrics: TrainerMetrics | None = None,
        pause: Callable[[str], None] | None = None,
        drift_wait_s: float = 0.0,
        broker_retries: int = 0,
        retry_backoff_s: float = 2.0,
        newer_drift: Callable[[str, datetime], bool] | None = None,
    ) -> None:
        self.newer_drift = newer_drift
        self.broker_retries = broker_retries
        self.retry_backoff_s = retry_backoff_s
        self.registry = registry
        self.configs = configs
        self.replay = replay
        self.pool = pool
        self.metrics = metrics or TrainerMetrics()
        self.pause = pause or (lambda step: None)
        self.drift_wait_s = drift_wait_s
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, stream: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(stream, threading.Lock())

    # -- the entry point ----------------------------------------------------------------

    def handle(self, trigger: Trigger) -> Result:
        """Run (or resume, or skip) the training run of one trigger event."""
        config = self.configs(trigger.stream)
        if config is None:
            raise UnknownStream(f"no stream config for {trigger.stream!r} on the streams topic")
        self.metrics.streams.seen(trigger.stream)
        if report_only(trigger, config):
            result = Result(
                "reported",
                decision=(
                    f"data drift on {getattr(trigger, 'feature', None)!r} reported, not "
                    "retrained (policy.drift.data_drift_retrains is false)"
                ),
            )
        else:
            with self._lock(trigger.stream):
                result = self._handle(trigger, config)
        self.metrics.streams.child(self.metrics.runs, trigger.stream, result.outcome).inc()
        return result

    def _handle(self, trigger: Trigger, config: StreamConfig) -> Result:
        stream = trigger.stream
        event_id = str(trigger.event_id)
        runs = self.registry.list_runs(model=stream, limit=200)
        mine = next((r for r in runs if r.trigger_event_id == event_id), None)
        if mine is not None and mine.status != "running":
            log.info("trigger %s already trained in run %s (%s)", event_id, mine.id, mine.status)
            return Result("duplicate", mine.id, mine.winner_version, mine.decision or "")
        if mine is None:
            merged = coalesce_with(trigger, runs, cooldown=config.policy.drift.cooldown)
            if merged is not None:
                self.registry.mark_handled(consumer=SERVICE, event_id=event_id)
                log.info(
                    "drift %s on %s coalesced into run %s (within the cooldown of %d examples)",
                    event_id,
                    stream,
                    merged.id,
                    config.policy.drift.cooldown,
                )
                return Result("coalesced", merged.id, merged.winner_version)
        self.registry.record_spec(config=config)  # reproduce finds the spec by its sha256
        limits = self._bounds(trigger, config) if mine is None else None
        champion = self.registry.get_alias(model=stream, alias="champion")
        run, created = self.registry.start_run(
            model=stream,
            trigger_event_id=event_id,
            trigger=describe(trigger),
            window={
                "end": {str(p): o for p, o in (limits.end if limits else {}).items()},
                "begin": {str(p): o for p, o in (limits.begin if limits else {}).items()},
                "champion_at_start": champion,
                "config_version": config.version,
            },
        )
        if not created:
            log.info("resuming run %s of trigger %s", run.id, event_id)
        self.metrics.in_progress.inc()
        started = time.perf_counter()
        try:
            result = self._run_with_retries(trigger, config, run)
        except Exception as exc:
            self.registry.finish_run(
                run_id=run.id, status="failed", decision=f"error: {type(exc).__name__}: {exc}"
            )
            raise
        finally:
            self.metrics.in_progress.dec()
        elapsed = time.perf_counter() - started
        self.metrics.streams.child(self.metrics.run_seconds, stream).observe(elapsed)
        for phase, seconds in result.timings.phases.items():
            self.metrics.phase_seconds.labels(phase=phase).observe(seconds)
        self.registry.mark_handled(consumer=SERVICE, event_id=event_id)
        return result

    def _run_with_retries(self, trigger: Trigger, config: StreamConfig, run: TrainingRun) -> Result:
        """:meth:`_run`, again after a broker error (a restart, a lost leader) or a registry
        that did not answer (an outage): the run is resumable, so a retry re-reads the same
        recorded offsets and reuses the versions it registered. Data that has left
        retention is not retried."""
        backoff = self.retry_backoff_s
        for attempt in itertools.count(1):
            try:
                return self._run(trigger, config, run)
            except DataExpired:
                raise
            except (BrokerError, RegistryUnavailable) as exc:  # resumable: same run again
                if attempt > self.broker_retries:
                    raise
                log.warning(
                    "run %s of %s: %s; retrying in %.0f s (retry %d of %d)",
                    run.id,
                    trigger.stream,
                    exc,
                    backoff,
                    attempt,
                    self.broker_retries,
                )
                time.sleep(backoff)  # backing off from a broker that failed, not polling
                backoff *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _bounds(self, trigger: Trigger, config: StreamConfig) -> Bounds:
        """The valid topic's offsets the run will read, once the drift has data after it.

        A ``since_drift`` run trains on the examples after the drift point; right after a
        quick detection there are few, and a window padded up to ``min_size`` with older
        examples would teach the old concept again. So the run waits (up to
        ``drift_wait_s``) until the drift's partition holds ``min_size`` records after the
        drift's offset, then takes the bounds; past the deadline it goes on with what
        there is.
        """
        bounds = self.replay.bounds()
        rp = config.policy.retrain
        if (
            not isinstance(trigger, DriftDetected)
            or rp.mode != "since_drift"
            or trigger.topic != self.replay.topic
            or self.drift_wait_s <= 0
        ):
            return bounds
        deadline = time.monotonic() + self.drift_wait_s
        while bounds.end.get(trigger.partition, 0) - trigger.offset < rp.min_size:
            if time.monotonic() >= deadline:
                log.warning(
                    "%s: %d examples after the drift at %s[%d]@%d after %.0f s, fewer than "
                    "min_size %d: training on a window that reaches back before the drift",
                    trigger.stream,
                    bounds.end.get(trigger.partition, 0) - trigger.offset,
                    trigger.topic,
                    trigger.partition,
                    trigger.offset,
                    self.drift_wait_s,
                    rp.min_size,
                )
                break
            time.sleep(0.5)  # new examples arrive at the stream's pace
            bounds = self.replay.bounds()
        return bounds

    # -- one run --------------------------------------------------------------------------

    def _run(self, trigger: Trigger, config: StreamConfig, run: TrainingRun) -> Result:
        stream, policy = trigger.stream, config.policy
        rp = policy.retrain
        timings = Timings()
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
            self.replay.read_back(
                stream,
                limits,
                first_step=int(max(size_w, rp.min_size) * 1.1) + 100,
                enough=enough,
                stats=stats,
                spec=config.spec,
            )
        )
        for reason, count in stats.skipped.items():
            self.metrics.streams.child(self.metrics.skipped_rows, stream, reason).inc(count)
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
        try:
            count = window.window_size(
                rows, mode=mode, window=size_w, min_size=rp.min_size, drift_time=drift_time
            )
            chosen = window.select(rows, count=count)
            train_rows, holdout = window.split(chosen, holdout_fraction=rp.holdout_fraction)
        except window.WindowTooSmall as exc:
            note = f"not trained: {exc}"
            self.registry.finish_run(run_id=run.id, status="rejected", decision=note)
            log.warning("run %s of %s: %s", run.id, stream, note)
            return Result("too_small", run.id, None, note, timings)
        lineage = window.lineage(chosen, self.replay.topic)
        rows_gauge = self.metrics.streams.gauge(self.metrics.window_rows, stream)
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
        spec = config.spec
        task = spec.label.kind
        metric = policy.primary_metric_for(task)
        vec = Vectorizer(spec.features)
        X_train, y_train = vec.matrix([r.features for r in train_rows]), labels(train_rows)
        X_hold, y_hold = vec.matrix([r.features for r in holdout]), labels(holdout)
        seg = policy.segment_feature
        segments = [r.features.get(seg) for r in holdout] if seg else None
        timings.add("decode", time.perf_counter() - t1)
        window_doc = {
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
        fitted = fit_candidates(  # submitted now: the pool fits while the champion is scored
            self.registry,
            self.pool,
            run=run,
            config=config,
            lineage=lineage,
            window_doc=window_doc,
            data=(X_train, y_train, X_hold, y_hold, segments),
            timings=timings,
        )
        t2 = time.perf_counter()

        def rescore(version: ModelVersion) -> gate.Scored:
            return score_version(
                self.registry,
                stream,
                version,
                holdout,
                y_hold,
                segments,
                task,
                metric,
                vec,
                before=train_rows,
            )

        # the references while the pool fits: the online model as fresh as it serves
        champ_version, champ = champion_at_start(self.registry, stream, run, rescore)
        online = online_scored(self.registry, stream, champ_version, rescore)
        timings.add("score", time.perf_counter() - t2)
        reference = gate.stronger(metric, champ, online)
        window_doc["online"] = (
            None
            if online is None
            else {"scored_as": online.name, "metrics": _finite_metrics(online.metrics)}
        )
        newest = max(r.event_time for r in chosen)
        candidates: list[Candidate] = []
        moves: list[tuple[Candidate, Outcome, str]] = []
        decision = gate.decide(
            metric=metric,
            champion=reference,
            candidates=[],
            margin=policy.margin,
            max_gap=policy.max_gap,
        )
        for cand in fitted:
            candidates.append(cand)
            decision = gate.decide(
                metric=metric,
                champion=reference,
                candidates=[c.scored for c in candidates],
                margin=policy.margin,
                max_gap=policy.max_gap,
            )
            # a winner moves as soon as it is fitted, not after the slowest candidate; a
            # later one moves too only if it beats it (compared again on the same holdout)
            winner = next((c for c in candidates if c.name == decision.winner), None)
            if winner is None or (moves and moves[-1][0].name == winner.name):
                continue
            if moves and moves[-1][1] in ("superseded", "frozen"):
                continue  # settled for the whole run
            if not moves:
                self.pause("registered")
            t3 = time.perf_counter()
            moved, summary = self._move(
                trigger, config, run, winner, champ_version, champ, decision, rescore, newest
            )
            timings.add("promote", time.perf_counter() - t3)
            moves.append((winner, moved, summary))
        return self._conclude(
            config, run, candidates, champ_version, champ, decision, window_doc, timings, moves
        )

    def _move(
        self,
        trigger: Trigger,
        config: StreamConfig,
        run: TrainingRun,
        winner: Candidate,
        champ_version: ModelVersion | None,
        champ: gate.Scored | None,
        decision: gate.Decision,
        rescore: Callable[[ModelVersion], gate.Scored],
        newest: datetime,
    ) -> tuple[Outcome, str]:
        """Move ``champion`` (or ``challenger``) to the gate's ``winner``, unless a newer
        drift supersedes a scheduled run or the model is frozen."""
        stream, policy = config.stream, config.policy
        alias = "champion" if policy.promotion == "direct" else "challenger"
        superseded = promotion.superseded(trigger, newest, self.newer_drift)
        if superseded:
            return "superseded", (
                f"{winner.name} v{winner.version.version} won the gate ({decision.summary}) "
                f"but {superseded}; not promoted"
            )
        info = self.registry.get_model(name=stream)
        if policy.frozen or (info is not None and info.frozen):
            return "frozen", (
                f"frozen: {winner.name} v{winner.version.version} would have become "
                f"{alias} ({decision.summary}); no alias moved"
            )
        return promotion.promote(
            self.registry,
            stream,
            alias,
            run,
            winner,
            champ_version,
            champ,
            decision,
            policy.primary_metric_for(config.spec.label.kind),
            policy.margin,
            rescore=rescore,
            max_gap=policy.max_gap,
            actor=SERVICE,
            pause=self.pause,
        )

    def _conclude(
        self,
        config: StreamConfig,
        run: TrainingRun,
        candidates: list[Candidate],
        champ_version: ModelVersion | None,
        champ: gate.Scored | None,
        decision: gate.Decision,
        window_doc: dict[str, Any],
        timings: Timings,
        moves: Sequence[tuple[Candidate, Outcome, str]],
    ) -> Result:
        """Record the run: its candidates with their verdicts, its alias moves, its end."""
        stream = config.stream
        champion_doc: dict[str, Any] = {
            "version": champ_version.version if champ_version else None,
            "kind": champ_version.kind if champ_version else None,
            "scored_as": champ.name if champ else None,
            "metrics": dict(champ.metrics) if champ else {},
            "segments": dict(champ.segments) if champ else {},
            "gap": champ.gap if champ else None,
        }
        promoted = [c for c, moved, _ in moves if moved == "promoted"]
        winner = promoted[-1] if promoted else (moves[-1][0] if moves else None)
        outcome: Outcome = "promoted" if promoted else (moves[-1][1] if moves else "rejected")
        if promoted:  # the first move as soon as it was fitted, then any better one
            summary = "; then ".join(text for _, moved, text in moves if moved == "promoted")
        else:
            summary = moves[-1][2] if moves else decision.summary
        recorded = {c.name for c in (self.registry.get_run(run_id=run.id) or run).candidates}
        for cand in candidates:
            verdict = decision.verdict(cand.name)
            is_winner = winner is not None and cand.name == winner.name and outcome == "promoted"
            if cand.name not in recorded:
                note = verdict.reason
                own = next((text for c, _, text in moves if c is cand), None)
                if cand in promoted and not is_winner:
                    note = f"promoted as soon as it was fitted, then replaced: {note}"
                elif own is not None and not is_winner:
                    note = f"gate winner, but {own}"
                elif verdict.promoted and not is_winner:
                    note = f"gate winner, but {summary}"
                self.registry.add_candidate(
                    run_id=run.id,
                    name=cand.name,
                    params=cand.version.params.get("estimator", {}),
                    metrics={**cand.scored.metrics, "gap": cand.scored.gap},
                    fit_s=cand.fit_s,
                    version=cand.version.version,
                    note=("promoted: " if is_winner else "not promoted: ") + note,
                )
            self.metrics.streams.child(
                self.metrics.candidates, stream, cand.name, "promoted" if is_winner else "lost"
            ).inc()
        self.registry.finish_run(
            run_id=run.id,
            status="succeeded" if outcome == "promoted" else "rejected",
            decision=summary,
            winner_version=winner.version.version if winner and outcome == "promoted" else None,
            champion=champion_doc,
            window={**window_doc, "timings": timings.phases},
        )
        log.info("run %s of %s: %s", run.id, stream, summary)
        return Result(
            outcome,
            run.id,
            winner.version.version if winner and outcome == "promoted" else None,
            summary,
            timings,
        )


def retrains(event: DriftDetected, config: StreamConfig | None) -> bool:
    """Whether a drift event starts a run (a data drift only when the policy asks)."""
    if event.kind == "concept":
        return True
    return config is not None and config.policy.drift.data_drift_retrains


def report_only(trigger: Trigger, config: StreamConfig) -> bool:
    """Whether ``trigger`` is a data drift that the stream's policy only reports."""
    return isinstance(trigger, DriftDetected) and not retrains(trigger, config)


def coalesce_with(
    trigger: Trigger, runs: Sequence[TrainingRun], *, cooldown: int
) -> TrainingRun | None:
    """The earlier run a drift event belongs to: one of the same stream triggered by drift
    within ``cooldown`` examples of it (manual requests never coalesce)."""
    if not isinstance(trigger, DriftDetected):
        return None
    for run in runs:
        if run.trigger.get("event_type") != "drift_detected":
            continue
        count = run.trigger.get("example_count")
        if isinstance(count, int) and abs(count - trigger.example_count) < max(1, cooldown):
            return run
    return None


def describe(trigger: Trigger) -> dict[str, Any]:
    """The trigger as recorded with its run."""
    return trigger.model_dump(mode="json")


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


def _finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if math.isfinite(v)}
