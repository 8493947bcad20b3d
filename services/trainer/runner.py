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

The pieces it drives live beside it: :mod:`~services.trainer.triggers` (which events
start a run), :mod:`~services.trainer.run_window` (the window read back and split),
:mod:`~services.trainer.candidates` (fit, score, register), :mod:`~services.trainer.promotion`
(the alias move) and :mod:`~services.trainer.run_record` (the run's outcome recorded).
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from schemas import StreamConfig
from schemas.drift import DriftDetected
from services.common.errors import BrokerError, DataExpired
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
from services.trainer.replay import Bounds
from services.trainer.run_record import Outcome, Result, conclude, finite_metrics
from services.trainer.run_window import Replay, read_window
from services.trainer.triggers import (
    Trigger,
    UnknownStream,
    coalesce_with,
    describe,
    report_only,
    retrains,
)

log = logging.getLogger(__name__)

SERVICE = "trainer"


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
        timings = Timings()
        try:
            win = read_window(trigger, config, run, self.replay, self.metrics, timings)
        except window.WindowTooSmall as exc:
            note = f"not trained: {exc}"
            self.registry.finish_run(run_id=run.id, status="rejected", decision=note)
            log.warning("run %s of %s: %s", run.id, stream, note)
            return Result("too_small", run.id, None, note, timings)
        chosen, train_rows, holdout, vec = win.chosen, win.train_rows, win.holdout, win.vec
        y_hold, segments, window_doc = win.y_hold, win.segments, win.doc
        task = config.spec.label.kind
        metric = policy.primary_metric_for(task)
        fitted = fit_candidates(  # submitted now: the pool fits while the champion is scored
            self.registry,
            self.pool,
            run=run,
            config=config,
            lineage=win.lineage,
            window_doc=window_doc,
            data=win.data,
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
            else {"scored_as": online.name, "metrics": finite_metrics(online.metrics)}
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
        return conclude(
            self.registry,
            self.metrics,
            config,
            run,
            candidates,
            champ_version,
            champ,
            decision,
            window_doc,
            timings,
            moves,
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


__all__ = [
    "SERVICE",
    "Outcome",
    "Replay",
    "Result",
    "Trainer",
    "Trigger",
    "UnknownStream",
    "retrains",
]
