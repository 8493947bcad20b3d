"""The validator's edge: ``examples.raw`` -> judge -> ``examples.valid`` | ``examples.dead``.

One kafka-python consumer in the validator's group and one producer, in a plain loop,
the same batch consume -> judge -> produce -> commit-after-ack loop the learner uses:
poll a batch (up to ``DRIFTLINE_VALIDATOR_BATCH_SIZE`` records), judge every record with
the pure core :func:`services.validator.rules.judge`, send each outcome (the producer
batches them, ``linger_ms``), flush, and wait until the broker acknowledged every one.
(Judging the next batch while the previous one's acknowledgements come back was tried:
on the local broker it changed neither throughput nor CPU per message measurably in
``python -m bench validator --quick``, so the loop keeps nothing in flight between polls.)

Delivery is at-least-once and an offset is committed only after its output was
acknowledged by the broker (acks=all): a batch's next offsets become committable only
once every output of it is acknowledged; they are committed at once when a poll finds the
validator caught up (a batch shorter than the batch size), else every
``commit_interval_s``, before partitions are given up in a rebalance (nothing is in flight
between polls, where the rebalance listener runs) and on SIGTERM. Partitions lost without
a rebalance (the member was evicted) are forgotten uncommitted: their new owner
redelivers from the group's last commit. An output that is not
acknowledged (the producer gave up) makes the process exit at once with status 70
without committing anything more (:func:`_crash`), so a restart redelivers, exactly as
after a kill -9. Redeliveries are re-judged; the duplicate index turns them into
re-emissions with the same event ids.

Partitions: one stream, one partition of the valid topic. Producers pick raw partitions
with whatever partitioner their client has (murmur2 in Java and kafka-python, crc32 or
consistent-random in librdkafka clients, none at all), so one stream may arrive on
several raw partitions; the validator sends each valid example, keyed by its stream, to
the stream's canonical partition (:func:`~services.common.kafka_client.canonical_partition`,
the Java client's murmur2 of the stream name, over the valid topic's partition count
read at start), so every valid example of a stream is learned by one state in one place.
The duplicate index is therefore one per process, over every stream: it is rebuilt from
the tail of every valid partition at the first batch and whenever a rebalance changes
this process's raw partitions (another validator may have accepted ids of the same
streams meanwhile); it is rebuilt between batches, when the valid topic holds every
output this process sent. Dead letters are keyed by stream.

Specs: before the loop starts, the compacted ``streams`` topic is read to its end; then
a thread follows it (no consumer group: every validator sees every config) and the loop
applies new versions between batches.

SIGTERM: stop polling, finish the batch (its outputs acknowledged), commit, close the
clients (the caller then leaves the group when ``DRIFTLINE_VALIDATOR_LEAVE_ON_STOP``),
exit 0.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.structs import OffsetAndMetadata

from schemas import LabelledExample, ReasonCode, StreamConfig, Topics, utcnow
from services.common.backoff import Backoff
from services.common.codec import dead_letter, encode, event_key
from services.common.errors import BrokerError, ConfigError
from services.common.kafka_client import (
    canonical_partition,
    is_fenced,
    make_consumer,
    make_producer,
)
from services.common.logs import at
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.common.stream_configs import StreamConfigs
from services.validator.dedupe import DuplicateIndex, content_digest
from services.validator.metrics import ValidatorMetrics
from services.validator.rules import SERVICE, Position, QualityStats, judge
from services.validator.settings import ValidatorSettings
from services.validator.specs import SpecRegistry

log = logging.getLogger(__name__)

# Header on every valid example: the raw message it came from, "<topic>/<partition>/<offset>".
SOURCE_HEADER: Final = "driftline-source"
_READ_TIMEOUT_S: Final = 120.0
_REJECT_LOGS_PER_S: Final = 10
# Exit status when an output was not acknowledged or a batch could not be judged.
EXIT_CRASHED: Final = 70
# The largest request the producer sends: a dead letter carries its raw message whole.
_MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024
# How long a commit may take before it is left to the next one (or to a redelivery).
_COMMIT_TIMEOUT_MS: Final = 5_000
# Allocations between collections of the youngest generation (the default is 700).
_GC_GEN0_THRESHOLD: Final = 20_000


class SpecFeed:
    """Follows the compacted ``streams`` topic in a daemon thread, queueing every change
    for the event loop (the reading itself is :class:`StreamConfigs`')."""

    def __init__(self, settings: DriftlineSettings) -> None:
        self.updates: queue.SimpleQueue[StreamConfig | str] = queue.SimpleQueue()
        self._configs = StreamConfigs(settings, client_id="driftline-validator")
        self.topic = self._configs.topic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up(self, registry: SpecRegistry, timeout_s: float = _READ_TIMEOUT_S) -> int:
        """Read the topic up to its current end into ``registry``; returns changes applied."""
        changes = self._configs.catch_up(timeout_s)
        for change in changes:
            _apply(registry, change)
        return len(changes)

    def start(self) -> None:
        """Follow the topic in a daemon thread, queueing every new config."""
        self._thread = threading.Thread(target=self._follow, name="spec-feed", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                changes = self._configs.refresh(timeout_ms=500)
            except Exception as exc:  # keep following: a transient broker error must not stop it
                delay = backoff.failed()
                if backoff.should_log():
                    log.warning(
                        "reading %s failed (%d in a row), retrying with backoff: %s",
                        self.topic,
                        backoff.failures,
                        exc,
                        exc_info=backoff.failures == 1,
                    )
                self._stop.wait(delay)
                continue
            if backoff.failures:
                log.info("reading %s again after %d failures", self.topic, backoff.succeeded())
            for change in changes:
                self.updates.put(change)

    def close(self) -> None:
        """Stop following and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._configs.close()


def _apply(registry: SpecRegistry, update: StreamConfig | str | None) -> bool:
    if update is None:
        return False
    if isinstance(update, str):
        removed = registry.remove(update)
        if removed:
            log.info("stream %s deleted from the streams topic", update)
        return removed
    changed = registry.apply(update)
    if changed:
        log.info("stream %s: spec v%s in force", update.stream, update.version)
    return changed


def load_index(
    settings: DriftlineSettings, topic: str, partitions: Sequence[int], window: int
) -> tuple[DuplicateIndex, int]:
    """The duplicate index of every stream, rebuilt from the last ``window`` valid
    examples of each of ``partitions``.

    The index remembers ``window`` ids per partition read. Returns it and how many
    records were read.
    """
    index = DuplicateIndex(window * max(1, len(partitions)))
    consumer = make_consumer(
        settings, group_id=None, client_id="driftline-validator", max_poll_records=5000
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        first = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        pending = set()
        for tp in tps:
            start = max(first[tp], end[tp] - window)
            if start < end[tp]:
                consumer.seek(tp, start)
                pending.add(tp)
            else:
                consumer.pause(tp)
        deadline = time.monotonic() + _READ_TIMEOUT_S
        read = 0
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"timed out rebuilding the duplicate index from {topic}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    read += 1
                    _index_record(index, record.value)
            for tp in list(pending):
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
        return index, read
    finally:
        consumer.close()


def _index_record(index: DuplicateIndex, value: bytes | None) -> None:
    """Record one valid example (written by a validator) in the index."""
    try:
        doc = json.loads(value or b"")
        index.record(
            doc["stream"],
            doc["example_id"],
            uuid.UUID(doc["raw_event_id"]),
            int(doc["spec_version"]),
            digest=content_digest(doc["features"], doc["label"], doc["event_time"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("skipping an unreadable valid example while rebuilding the index: %s", exc)


class Validator:
    """The per-batch work: judge every record, send every outcome, return the futures."""

    def __init__(
        self,
        settings: DriftlineSettings,
        vsettings: ValidatorSettings,
        registry: SpecRegistry,
        feed: SpecFeed | None,
        metrics: ValidatorMetrics,
        valid_partitions: int,
    ) -> None:
        topics = Topics(settings.topic_prefix)
        self.settings = settings
        self.vsettings = vsettings
        self.registry = registry
        self.feed = feed
        self.metrics = metrics
        self.valid_topic = topics.name("examples.valid")
        self.dead_topic = topics.name("examples.dead")
        self.stats = QualityStats()
        self.valid_partitions = valid_partitions
        self.index: DuplicateIndex | None = None
        self.seen: set[int] = set()  # raw partitions this index was built for
        self.stale = False
        self._routes: dict[str, int] = {}
        self._reject_log_window = 0.0
        self._reject_logged = 0
        self._reject_suppressed: Counter[str] = Counter()

    def apply_spec_updates(self) -> None:
        """Put every config the feed has read into force (between batches)."""
        if self.feed is None:
            return
        changed = False
        while True:
            try:
                update = self.feed.updates.get_nowait()
            except queue.Empty:
                break
            changed = _apply(self.registry, update) or changed
        if changed:
            self.metrics.set_spec_versions(self.registry.versions())

    def revoked(self, partitions: set[int]) -> None:
        """Raw partitions handed to another validator: the index is rebuilt at the next
        batch, since the streams of this process's partitions may have changed hands."""
        if partitions:
            self.stale = True

    def route(self, stream: str) -> int:
        """The valid partition of ``stream``: its canonical partition."""
        partition = self._routes.get(stream)
        if partition is None:
            partition = self._routes[stream] = canonical_partition(
                stream.encode(), self.valid_partitions
            )
        return partition

    def needs_index(self, partitions: set[int]) -> bool:
        """Whether judging records of ``partitions`` needs the index rebuilt first."""
        return self.index is None or self.stale or not partitions <= self.seen

    def ensure_index(self, partitions: set[int]) -> DuplicateIndex:
        """The duplicate index, rebuilt from every valid partition at the first batch and
        after this process's raw partitions changed (between batches: the valid topic
        holds every output this process sent)."""
        if self.index is not None and not self.needs_index(partitions):
            return self.index
        fresh = self.index is None or self.stale
        started = time.perf_counter()
        index, read = load_index(
            self.settings,
            self.valid_topic,
            range(self.valid_partitions),
            self.vsettings.dedupe_window,
        )
        self.seen = set(partitions) if fresh else self.seen | partitions
        self.index, self.stale = index, False
        log.info(
            "duplicate index rebuilt from %d valid examples of %d partitions in %.2fs",
            read,
            self.valid_partitions,
            time.perf_counter() - started,
        )
        return index

    def handle(self, records: Sequence[Any], send: Callable[..., Any]) -> list[Any]:
        """Judge a batch and send every outcome; returns the delivery futures."""
        index = self.ensure_index({record.partition for record in records})
        now = utcnow()
        deliveries = [self._emit(record, index, now, send) for record in records]
        self.metrics.observe(self.stats)
        self.metrics.dedupe_ids.set(len(index))
        return deliveries

    def _emit(self, record: Any, index: DuplicateIndex, now: Any, send: Callable[..., Any]) -> Any:
        value = record.value if isinstance(record.value, bytes) else b""
        position = Position(record.topic, record.partition, record.offset, record.key)
        try:
            outcome = judge(
                value,
                position,
                self.registry,
                index,
                now,
                max_bytes=self.vsettings.max_message_bytes,
                stats=self.stats,
            )
            if isinstance(outcome, LabelledExample):
                source = f"{record.topic}/{record.partition}/{record.offset}".encode()
                return send(
                    self.valid_topic,
                    value=encode(outcome),
                    key=outcome.stream.encode(),
                    headers=[(SOURCE_HEADER, source)],
                    partition=self.route(outcome.stream),
                )
            letter = outcome
        except Exception as exc:  # the per-message path never raises: dead-letter it
            log.exception(
                "failed on a message", extra=at(position.topic, position.partition, position.offset)
            )
            letter = dead_letter(
                reason=ReasonCode.HANDLER_ERROR,
                detail=f"the validator failed on this message ({type(exc).__name__}: {exc})",
                service=SERVICE,
                topic=position.topic,
                partition=position.partition,
                offset=position.offset,
                key=position.key,
                value=value,
            )
        self._log_reject(letter.reason.value, letter.detail, position)
        return send(self.dead_topic, value=encode(letter), key=event_key(letter))

    def _log_reject(self, reason: str, detail: str, position: Position) -> None:
        """Log rejections with their position, at most a few per second."""
        now = time.monotonic()
        if now - self._reject_log_window >= 1.0:
            if self._reject_suppressed:
                log.info(
                    "%d more rejections not logged: %s",
                    sum(self._reject_suppressed.values()),
                    dict(self._reject_suppressed),
                )
            self._reject_log_window, self._reject_logged = now, 0
            self._reject_suppressed.clear()
        if self._reject_logged < _REJECT_LOGS_PER_S:
            self._reject_logged += 1
            log.info(
                "rejected: %s",
                detail,
                extra=at(position.topic, position.partition, position.offset, reason=reason),
            )
        else:
            self._reject_suppressed[reason] += 1


@dataclass
class Loop:
    """The consume -> judge -> produce -> commit-after-ack loop around a :class:`Validator`.

    ``consumer`` is subscribed to the raw topic by :meth:`run`; ``producer`` sends the
    outcomes. ``acked`` holds, per raw partition, the next offset whose every earlier
    record has an acknowledged output; ``committed`` is what the group has of it.
    """

    validator: Validator
    consumer: Any
    producer: Any
    raw_topic: str
    batch_size: int
    poll_timeout_ms: int
    commit_interval_s: float
    acked: dict[Any, int] = field(default_factory=dict)
    committed: dict[Any, int] = field(default_factory=dict)
    last_commit: float = field(default_factory=time.monotonic)
    lost: set[Any] = field(default_factory=set)  # taken from us: forget at the next step

    def run(self, stop: GracefulShutdown) -> None:
        """Validate until ``stop`` is requested, then commit what the last batch covered."""
        loop = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                loop.revoked(list(revoked))

            def on_partitions_lost(self, lost: Any) -> None:
                # evicted (session expired, unknown member): nothing can be committed;
                # this may run on the client's I/O thread, so only note it
                loop.lost.update(lost)
                loop.validator.revoked({tp.partition for tp in lost})

            def on_partitions_assigned(self, assigned: Any) -> None:
                pass  # the group's committed offsets are where to start

        self.consumer.subscribe([self.raw_topic], listener=Listener())
        while not stop.requested:
            self.step()
        self.commit()

    def step(self) -> None:
        """One poll: judge and send what came, wait for every output to be acknowledged,
        then make its offsets committable; commit when due or caught up."""
        self.validator.apply_spec_updates()
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
        if self.lost:
            self._forget(set(self.lost))
        records = [record for batch in polled.values() for record in batch]
        if records:
            started = time.perf_counter()
            try:
                deliveries = self.validator.handle(records, self.producer.send)
            except Exception:
                _crash("judging or sending a batch failed")
            self._settle(deliveries)
            self.acked.update({tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch})
            self.validator.metrics.batch_seconds.observe(time.perf_counter() - started)
        # A short batch means the consumer is caught up: commit at once, so that an idle
        # validator has nothing to redeliver; under load, every commit_interval_s.
        caught_up = len(records) < self.batch_size
        if caught_up or time.monotonic() - self.last_commit >= self.commit_interval_s:
            self.commit()

    def _settle(self, deliveries: list[Any]) -> None:
        """Send at once what the producer holds and wait until the broker answered for
        every output; exit without committing if one was not acknowledged."""
        try:
            self.producer.flush()  # the producer's delivery timeout bounds the wait
            for future in deliveries:
                future.get()  # done after the flush; raises what the producer gave up with
        except Exception:
            _crash("an output of a batch was not acknowledged by the broker")

    def commit(self) -> None:
        """Commit every acknowledged offset the group does not have yet."""
        self.last_commit = time.monotonic()
        due = {tp: o for tp, o in self.acked.items() if self.committed.get(tp) != o}
        if not due:
            return
        try:
            self.consumer.commit(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in due.items()},
                timeout_ms=_COMMIT_TIMEOUT_MS,
            )
        except Exception as exc:  # noqa: BLE001 - a later commit (or a redelivery) covers it
            if is_fenced(exc):  # another replica runs under this instance id: stop
                raise
            log.warning("committing offsets failed (they will be redelivered if lost): %s", exc)
            return
        self.committed.update(due)

    def revoked(self, partitions: list[Any]) -> None:
        """Before partitions go (no batch is in flight between polls): commit, forget."""
        self.commit()
        self._forget(set(partitions))
        self.validator.revoked({tp.partition for tp in partitions if tp.topic == self.raw_topic})

    def _forget(self, partitions: set[Any]) -> None:
        for tp in partitions:
            self.acked.pop(tp, None)
            self.committed.pop(tp, None)
        self.lost -= partitions


def _crash(what: str) -> NoReturn:
    """Exit at once without committing anything more.

    A restart redelivers everything since the last commit, exactly as after a kill -9.
    """
    log.critical("%s; exiting so that a restart redelivers it", what, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_CRASHED)


def _quiet_collector() -> None:
    """Fewer cyclic garbage collections on the hot path.

    Every record allocates dozens of short-lived objects (records, models, delivery
    futures that hold reference cycles until the broker answers), so the default
    threshold (700) runs a collection every few records. What start-up built (modules,
    clients, specs) is frozen out of the collector's view, and the youngest generation
    is collected every 20,000 allocations: measured with ``python -m bench validator
    --quick``, alternately with the defaults, 3 to 10 % less CPU per message (one
    outlier 40 %), the peak RSS about the same (69-70 MB against 67-69).
    """
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, 20, 100)


def check_topics(settings: DriftlineSettings) -> int:
    """Fail fast, naming the fix, when a topic the validator needs is missing; returns the
    valid topic's partition count, over which streams are routed."""
    topics = Topics(settings.topic_prefix)
    consumer = make_consumer(settings, group_id=None, client_id="driftline-validator")
    try:
        counts = {}
        for suffix in ("examples.raw", "examples.valid", "examples.dead", "streams"):
            parts = consumer.partitions_for_topic(topics.name(suffix))
            if not parts:
                raise ConfigError(
                    "topics",
                    f"topic {topics.name(suffix)!r} does not exist on {settings.bootstrap}; "
                    "run `driftline topics create`",
                )
            counts[suffix] = len(parts)
    finally:
        consumer.close()
    return counts["examples.valid"]


def run(settings: DriftlineSettings, vsettings: ValidatorSettings) -> int:
    """Run the validator until SIGTERM/SIGINT; returns the exit code."""
    topics = Topics(settings.topic_prefix)
    raw = topics.name("examples.raw")
    valid_partitions = check_topics(settings)
    metrics = ValidatorMetrics()
    registry = SpecRegistry()
    feed = SpecFeed(settings)
    consumer = producer = None
    try:
        read = feed.catch_up(registry)
        metrics.set_spec_versions(registry.versions())
        log.info(
            "read %d stream configs: %s",
            read,
            ", ".join(f"{s} v{v}" for s, v in registry.versions().items()) or "none yet",
        )
        if vsettings.metrics_port:
            port = metrics.metrics.serve(vsettings.metrics_port, vsettings.metrics_host)
            log.info("metrics on http://%s:%d/metrics", vsettings.metrics_host, port)
        feed.start()
        validator = Validator(settings, vsettings, registry, feed, metrics, valid_partitions)
        session_ms = int(vsettings.session_timeout_s * 1000)
        consumer = make_consumer(
            settings,
            group_id=vsettings.group(settings.topic_prefix),
            group_instance_id=vsettings.member(settings),  # static: fast restarts
            client_id="driftline-validator",
            max_poll_records=vsettings.batch_size,
            fetch_max_wait_ms=vsettings.fetch_max_wait_ms,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 3),
        )
        producer = make_producer(
            settings, client_id="driftline-validator", max_request_size=_MAX_REQUEST_BYTES
        )
        loop = Loop(
            validator,
            consumer,
            producer,
            raw,
            batch_size=vsettings.batch_size,
            poll_timeout_ms=max(1, int(vsettings.batch_timeout_s * 1000)),
            commit_interval_s=vsettings.commit_interval_s,
        )
        log.info(
            "validating %s -> %s | %s (group %s)",
            raw,
            validator.valid_topic,
            validator.dead_topic,
            vsettings.group(settings.topic_prefix),
        )
        _quiet_collector()
        with GracefulShutdown() as stop:
            loop.run(stop)
        return 0
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
        if producer is not None:
            producer.close(timeout=5)
        feed.close()
        metrics.metrics.close()
