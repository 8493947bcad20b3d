"""The learner's edge: valid examples in, drift events, metric snapshots, online versions
and signed checkpoints out.

It consumes with a plain consumer of the configured backend (kafka-python, or
confluent-kafka with ``DRIFTLINE_KAFKA_CLIENT=confluent``) rather than faust: on every
assignment it must restore each partition's stream checkpoints and seek to the smallest
offset stored *with* them, and commit only after a checkpoint; faust manages positions and
commits itself (its offsets would fight the checkpoints'), so the simple, explicit
consumer is the safer tool here.

While the registry is unreachable the learner keeps learning: a checkpoint or an online
version that cannot be written waits (nothing is committed past the last checkpoint), and
is tried again with backoff; the version then registered is the stream's newest state,
under its own idempotency key. A partition cannot start without its checkpoint, so
restoring one is retried until the registry answers.

What it writes to the registry lives beside it: ``checkpoints.py`` (keys, which streams
are due, save and restore), ``online_versions.py`` (a snapshot registered, its aliases
moved) and ``registry_outage.py`` (when to try again).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from schemas import LabelledExample, ReasonCode, Topics
from services.common.backoff import Backoff
from services.common.codec import decode, encode, event_key
from services.common.dead_letters import DeadLetters
from services.common.errors import CodecError
from services.common.kafka_backend import is_fenced, open_consumer, open_producer
from services.common.kafka_types import TopicPartition
from services.common.logs import at
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.common.stream_configs import StreamConfigs
from services.learner.checkpoints import CheckpointSchedule, partition_key, restore
from services.learner.metrics import LearnerMetrics
from services.learner.online_versions import register_online
from services.learner.registry_outage import RegistryOutage
from services.learner.settings import LearnerSettings
from services.learner.state import PartitionState
from services.registry.client import Registry, RegistryUnavailable

log = logging.getLogger(__name__)


class Learner:
    """One learner process: owns the streams of the partitions assigned to it."""

    def __init__(
        self, settings: DriftlineSettings, service: LearnerSettings, registry: Registry
    ) -> None:
        self.settings = settings
        self.service = service
        self.registry = registry
        self.topics = Topics(settings.topic_prefix)
        self.valid = self.topics.name("examples.valid")
        self.states: dict[int, PartitionState] = {}
        self.dirty: set[int] = set()
        self.schedule = CheckpointSchedule(
            every=service.checkpoint_every, interval_s=service.checkpoint_interval_s
        )
        self._learned: dict[str, Any] = {}  # per-stream counter children, looked up once
        self._learned_now: dict[str, int] = {}  # learned in this poll, per stream
        self._seen_now: dict[str, int] = {}  # the stream's example count after this poll
        self.member = f"{socket.gethostname()}:{os.getpid()}"
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self.unregistered: set[tuple[int, str]] = set()  # versions due while it was down
        self._checkpoint_cost = 0.0  # seconds the last checkpoint took
        self._snapshot_cost: dict[str, float] = {}  # stream -> its last snapshot's seconds
        self._snapshot_at: dict[str, float] = {}  # stream -> when its last snapshot ended
        self.metrics = m = LearnerMetrics()
        self.outage = RegistryOutage(m.deferred)
        self.learned = m.learned
        self.duplicates = m.duplicates
        self.drifts = m.drifts
        self.retrains = m.retrains
        self.gauges = m.gauges
        self.versions = m.versions
        self.checkpoints = m.checkpoints
        self.snapshot_seconds = m.snapshot_seconds
        self.skipped_snapshots = m.skipped_snapshots
        self.snapshot_bytes = m.snapshot_bytes
        self.dead = m.dead
        self.stream_examples = m.stream_examples
        self._seen_gauges: dict[str, Any] = {}  # per-stream gauge children
        self.configs = StreamConfigs(
            settings,
            client_id="driftline-learner",
            counter=m.config_rejects,
        )
        self.producer = open_producer(settings, client_id="driftline-learner")
        self.dead_letters = DeadLetters(
            self.producer, self.topics.name("events.dead"), service="learner", counter=self.dead
        )
        self.consumer = open_consumer(
            settings,
            group_id=service.group_id,
            group_instance_id=service.member(settings),  # static: a restart resumes at once
            client_id="driftline-learner",
            max_poll_records=service.max_poll_records,
            session_timeout_ms=service.session_timeout_ms,
            heartbeat_interval_ms=max(1000, service.session_timeout_ms // 10),
        )

    # -- partitions -----------------------------------------------------------------

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """Restore each partition's stream checkpoints and seek to the smallest offset
        among them (each stream skips what it already learned)."""
        for tp in partitions:
            state = self._restore(tp)
            if state is not None:
                self.states[tp.partition] = state
                self.consumer.seek(tp, state.next_offset)
                if state.must_save:  # a whole-partition checkpoint: superseded at the next
                    self.dirty.add(tp.partition)
                self.schedule.restored(state)
                for stream, track in state.streams.items():
                    self._examples_gauge(stream).set(track.learner.examples_seen)
                log.info(
                    "restored %d stream checkpoint(s)",
                    len(state.streams),
                    extra=at(tp.topic, tp.partition, state.next_offset),
                )
            else:
                self.states[tp.partition] = PartitionState(tp.topic, tp.partition)
                self.consumer.seek_to_beginning(tp)
                log.info(
                    "no checkpoint: from the beginning",
                    extra={"topic": tp.topic, "partition": tp.partition},
                )

    def _restore(self, tp: TopicPartition) -> PartitionState | None:
        """:func:`restore`, retried with backoff while the registry is unreachable."""
        backoff = Backoff(first_s=0.5, max_s=10.0)
        while True:
            try:
                return restore(
                    self.registry,
                    key=self._key(tp.partition),
                    topic=tp.topic,
                    partition=tp.partition,
                )
            except RegistryUnavailable as exc:
                delay = backoff.failed()
                if backoff.should_log():
                    log.warning("cannot restore partition %d yet: %s", tp.partition, exc)
                time.sleep(delay)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Checkpoint what is being handed over, then forget it."""
        try:
            self.checkpoint({tp.partition for tp in partitions} & self.dirty, everything=True)
        except RegistryUnavailable as exc:  # not committed: its next owner learns it again
            log.warning("could not checkpoint the revoked partitions: %s", exc)
        for tp in partitions:
            gone = self.states.pop(tp.partition, None)
            self.dirty.discard(tp.partition)
            self.schedule.forget(tp.partition)
            for stream in gone.streams if gone is not None else ():
                if self._seen_gauges.pop(stream, None) is not None:
                    self.stream_examples.remove(stream)  # its new owner reports it

    def _key(self, partition: int) -> str:
        return partition_key(self.service.group_id, self.valid, partition)

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: GracefulShutdown) -> None:
        """Consume until ``stop`` is requested; checkpoint and commit on the way out."""
        self.configs.catch_up()
        learner = self

        class Listener:
            def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                learner.revoked(revoked)

            def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                learner.assigned(assigned)

        self.consumer.subscribe([self.valid], listener=Listener())
        while not stop.requested:
            batches = self.consumer.poll(timeout_ms=500)
            for tp, records in batches.items():
                state = self.states.get(tp.partition)
                if state is None:
                    continue  # revoked while this batch was in flight
                for record in records:
                    self._one(state, record)
                self.dirty.add(tp.partition)
            self._count_learned()
            self.configs.refresh()
            if self.unregistered and self.outage.ready():
                self._register_deferred()
            elapsed = time.monotonic() - self.last_checkpoint
            due = self.since_checkpoint >= self.service.checkpoint_every or (
                self.dirty and elapsed >= self.service.checkpoint_interval_s
            )
            if due and elapsed >= self._rest(self._checkpoint_cost):
                if not self.outage.ready():
                    self.outage.put_off("checkpoint")
                    continue
                try:
                    self.checkpoint(set(self.dirty))
                except RegistryUnavailable as exc:
                    self.outage.down("checkpoint", exc)
                else:
                    self.outage.up()
        try:
            self.checkpoint(set(self.dirty), everything=True)
        except RegistryUnavailable as exc:
            log.warning(
                "the registry is unreachable at stop: what was learned since the last "
                "checkpoint is learned again at the next start (%s)",
                exc,
            )

    # -- registry outages -----------------------------------------------------------

    def _register_deferred(self) -> None:
        """Register the newest state of each stream whose version came due during an
        outage (one version per stream, not one per missed due point)."""
        for p, stream in sorted(self.unregistered):
            state = self.states.get(p)
            if state is None or stream not in state.streams:
                self.unregistered.discard((p, stream))
                continue
            try:
                self._register(state, stream)
            except RegistryUnavailable as exc:
                self.outage.down("version", exc)
                return
            self.unregistered.discard((p, stream))
        self.outage.up()

    def _one(self, state: PartitionState, record: Any) -> None:
        try:
            example = decode(record.value, LabelledExample)
        except CodecError as exc:
            self._dead(record, exc.reason, exc.detail)
            state.next_offset = record.offset + 1
            return
        assert isinstance(example, LabelledExample)  # noqa: S101 - decode's target
        config = self.configs.current(example.stream, at_least=example.spec_version)
        if config is None:
            self._dead(
                record,
                ReasonCode.UNKNOWN_STREAM,
                f"no config for stream {example.stream!r} on the streams topic",
            )
            state.next_offset = record.offset + 1
            return
        try:
            handled = state.handle(
                example,
                offset=record.offset,
                config=config,
                metrics_every=self.service.metrics_every,
                dedupe_window=self.service.dedupe_window,
                first_version_at=self.service.first_version_at,
            )
        except Exception as exc:  # noqa: BLE001 - no record may stop the learner
            state.next_offset = record.offset + 1
            self.since_checkpoint += 1
            self._dead(
                record,
                ReasonCode.HANDLER_ERROR,
                f"the model refused this example ({type(exc).__name__}: {str(exc)[:300]}); "
                "not learned",
                example=example,
            )
            return
        self.since_checkpoint += 1
        if handled.rejected is not None:
            reason, detail = handled.rejected
            self._dead(record, reason, f"{detail}; not learned", example=example)
            return
        if handled.duplicate:
            self.duplicates.labels(stream=handled.stream).inc()
            return
        # counted once per poll (_count_learned): a metric call per example costs more
        self._learned_now[handled.stream] = self._learned_now.get(handled.stream, 0) + 1
        if handled.outcome is not None:
            self._seen_now[handled.stream] = handled.outcome.example_count
        for event in handled.drift:
            self._send("drift", event)
            self.drifts.labels(stream=handled.stream, kind=event.kind).inc()
            log.info(
                "drift detected: %s %s",
                event.kind,
                event.detector,
                extra=at(
                    record.topic,
                    record.partition,
                    record.offset,
                    stream=event.stream,
                    feature=event.feature,
                ),
            )
        if handled.retrain is not None:
            self._send("drift", handled.retrain)
            self.retrains.labels(stream=handled.stream).inc()
            log.info(
                "retrain requested: %s",
                handled.retrain.reason,
                extra=at(record.topic, record.partition, record.offset, stream=handled.stream),
            )
        if handled.metrics is not None:
            self._send("metrics", handled.metrics)
            for name, value in handled.metrics.values.items():
                self.gauges.labels(stream=handled.stream, metric=name).set(value)
        if not (handled.reconfigured or handled.version_due):
            return
        key = (state.partition, handled.stream)
        if self.unregistered or not self.outage.ready():
            self.unregistered.add(key)  # the registry is down: after it is back
            self.outage.put_off("version")
            return
        if not handled.reconfigured:  # followers wait for a snapshot of a new config
            since = time.monotonic() - self._snapshot_at.get(handled.stream, 0.0)
            if since < self._rest(self._snapshot_cost.get(handled.stream, 0.0)):
                # over the serialisation budget: this multiple of K is skipped
                self.skipped_snapshots.labels(stream=handled.stream).inc()
                return
        try:
            self._register(state, handled.stream)
        except RegistryUnavailable as exc:
            self.unregistered.add(key)
            self.outage.down("version", exc)

    def _rest(self, cost: float) -> float:
        """Seconds to wait after a serialisation of ``cost`` seconds to stay within the
        budget (``DRIFTLINE_LEARNER_SERIALISE_BUDGET``)."""
        budget = self.service.serialise_budget
        return cost * (1 - budget) / budget

    def _count_learned(self) -> None:
        """Add what the last poll learned to the per-stream counter and gauge."""
        for stream, count in self._learned_now.items():
            counter = self._learned.get(stream)
            if counter is None:
                counter = self._learned[stream] = self.learned.labels(stream=stream)
            counter.inc(count)
        for stream, seen in self._seen_now.items():
            self._examples_gauge(stream).set(seen)
        self._learned_now.clear()
        self._seen_now.clear()

    def _send(self, suffix: str, event: Any) -> None:
        self.producer.send(self.topics.name(suffix), key=event_key(event), value=encode(event))

    def _dead(
        self,
        record: Any,
        reason: ReasonCode,
        detail: str,
        *,
        example: LabelledExample | None = None,
    ) -> None:
        self.dead_letters.send(
            record,
            reason,
            detail,
            stream=example.stream if example is not None else None,
            example_id=example.example_id if example is not None else None,
            source_event_id=str(example.event_id) if example is not None else None,
        )

    def _examples_gauge(self, stream: str) -> Any:
        gauge = self._seen_gauges.get(stream)
        if gauge is None:
            gauge = self._seen_gauges[stream] = self.stream_examples.labels(stream=stream)
        return gauge

    # -- online versions ------------------------------------------------------------

    def _register(self, state: PartitionState, stream: str) -> None:
        """Register the stream's online version and move its aliases (timed: the
        serialisation budget spaces the next one)."""
        started = time.perf_counter()
        version = register_online(
            self.registry, state, stream, dedupe_window=self.service.dedupe_window
        )
        self.versions.labels(stream=stream).inc()
        cost = time.perf_counter() - started
        self._snapshot_cost[stream] = cost
        self._snapshot_at[stream] = time.monotonic()
        self.snapshot_seconds.observe(cost)
        self.snapshot_bytes.labels(stream=stream).set(version.artifact.size)

    # -- checkpoints ----------------------------------------------------------------

    def checkpoint(self, partitions: set[int], *, everything: bool = False) -> None:
        """Flush outputs; save the checkpoint of every stream that changed and is due (its
        state and the partition's next offset), then the partition's mark; then commit
        the marks' offsets to the group (for monitoring: the checkpoints are the truth,
        and the mark is never past a stream's unsaved change).

        Which changed streams are due is the :class:`CheckpointSchedule`'s rule (all of
        them when ``everything`` is asked: stop, revocation). A partition with changes
        left unsaved stays dirty.
        """
        started = time.perf_counter()
        now = time.monotonic()
        self.producer.flush()
        commits = {}
        unsaved = set()
        for p in sorted(partitions):
            state = self.states.get(p)
            if state is None:
                continue
            mark = self.schedule.save(
                self.registry, self._key(p), state, everything=everything, now=now
            )
            if state.changed:
                unsaved.add(p)
            commits[TopicPartition(self.valid, p)] = mark.next_offset
        if commits:
            try:
                self.consumer.commit(commits)
            except Exception as exc:  # noqa: BLE001 - informational; checkpoints hold the truth
                if is_fenced(exc):  # another replica runs under this instance id: stop
                    raise
                log.warning("offset commit failed (checkpoint saved): %s", exc)
        self.dirty = (self.dirty - partitions) | unsaved
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        self._checkpoint_cost = time.perf_counter() - started
        self.checkpoints.observe(self._checkpoint_cost)

    def close(self) -> None:
        """Close every client."""
        self.consumer.close()
        self.producer.flush()
        self.producer.close()
        self.configs.close()
