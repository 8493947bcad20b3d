"""The validator's edge pieces: ``examples.raw`` -> judge -> ``examples.valid`` | ``examples.dead``.

Routing, the duplicate index and the spec feed, used by the batch loop of
:mod:`services.validator.loop` (the default on both Kafka clients) and by the faust agent
below (opt-in: ``DRIFTLINE_VALIDATOR_ENGINE=faust``). What follows describes the faust
agent; the loop keeps the same guarantees with a plain consumer and producer.

The agent only decodes positions, calls :func:`services.validator.rules.judge` and
sends; everything it decides lives in the pure core.

Delivery is at-least-once and an offset is committed only after its output was
acknowledged by the broker: the agent takes events in batches with ``noack_take``
(which never acks on its own), sends every output, awaits every delivery future, and
only then acks the batch's events; faust commits acked offsets every
``commit_interval_s`` and when it stops or loses partitions (after waiting for
in-flight events). After a kill -9, everything since the last commit is redelivered
and re-judged; the duplicate index turns redeliveries into re-emissions with the same
event ids.

Partitions: one stream, one partition of the valid topic. Producers pick raw partitions
with whatever partitioner their client has (murmur2 in Java and kafka-python, crc32 or
consistent-random in librdkafka clients, none at all), so one stream may arrive on
several raw partitions; the validator sends each valid example, keyed by its stream, to
the stream's canonical partition (:func:`~services.common.kafka_client.canonical_partition`,
the Java client's murmur2 of the stream name, over the valid topic's partition count
read at start), so every valid example of a stream is learned by one state in one place.
The duplicate index is therefore one per process, over every stream: it is rebuilt from
the tail of every valid partition at start and whenever a rebalance changes this
process's raw partitions (another validator may have accepted ids of the same streams
meanwhile). Dead letters are keyed by stream.

Specs: before the worker starts, the compacted ``streams`` topic is read to its end;
then a thread follows it (no consumer group: every validator sees every config) and the
event loop applies new versions between messages.

kafka-python serves the spec feed and the index rebuild (plain reads outside the
consumer group); with the faust engine, faust (aiokafka) consumes and produces the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from kafka import TopicPartition

from schemas import LabelledExample, ReasonCode, StreamConfig, Topics, utcnow
from services.common.backoff import Backoff
from services.common.bootstrap import Startup
from services.common.codec import dead_letter, encode, event_key
from services.common.errors import BrokerError, ConfigError
from services.common.faust_app import make_app, raw_topic, run_worker
from services.common.kafka_client import canonical_partition, make_consumer
from services.common.logs import at
from services.common.settings import DriftlineSettings
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
# Batches judged and sent but not yet acknowledged by the broker, at most.
IN_FLIGHT_BATCHES: Final = 3


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


@dataclass(frozen=True)
class Outgoing:
    """What the validator sends for one raw record: topic, key, value, partition (None:
    the producer's choice) and headers."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None
    headers: list[tuple[str, bytes]] | None


class Validator:
    """The per-batch work of the agent: judge, send, await every acknowledgement."""

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
        """Put every config the feed has read into force (runs on the event loop)."""
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

    async def ensure_index(self, partitions: set[int]) -> DuplicateIndex:
        """The duplicate index, rebuilt from every valid partition at the first batch and
        after this process's raw partitions changed (off the event loop)."""
        if self.index is not None and not self.stale and partitions <= self.seen:
            return self.index
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.rebuild_index, partitions)

    def rebuild_index(self, partitions: set[int]) -> DuplicateIndex:
        """Read the duplicate index from every valid partition; ``partitions`` are the raw
        partitions it now covers (added to those it covered unless it was stale)."""
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

    async def handle(self, events: Sequence[Any], send: Callable[..., Any]) -> list[Any]:
        """Judge a batch and send every outcome; returns the delivery futures to await."""
        self.apply_spec_updates()
        index = await self.ensure_index({event.message.partition for event in events})
        now = utcnow()
        deliveries = [await self._emit(event.message, index, now, send) for event in events]
        self.metrics.observe(self.stats)
        self.metrics.dedupe_ids.set(len(index))
        return deliveries

    async def _emit(
        self, message: Any, index: DuplicateIndex, now: Any, send: Callable[..., Any]
    ) -> Any:
        out = self.outgoing(message, index, now)
        return await send(out.topic, out.key, out.value, out.partition, None, out.headers)

    def outgoing(self, record: Any, index: DuplicateIndex, now: Any) -> Outgoing:
        """Judge one raw record and name what to send for it: the valid example to the
        stream's partition of the valid topic, or a dead letter (never raises)."""
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
                return Outgoing(
                    self.valid_topic,
                    outcome.stream.encode(),
                    encode(outcome),
                    self.route(outcome.stream),
                    [(SOURCE_HEADER, source)],
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
        return Outgoing(self.dead_topic, event_key(letter), encode(letter), None, None)

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


def build_app(
    settings: DriftlineSettings, vsettings: ValidatorSettings, validator: Validator
) -> Any:
    """The faust app: one agent on ``examples.raw`` and a timer applying new specs."""
    session = vsettings.session_timeout_s
    app = make_app(
        settings,
        vsettings.group(settings.topic_prefix),
        broker_commit_interval=vsettings.commit_interval_s,
        consumer_group_instance_id=vsettings.member(settings),  # static: fast restarts
        broker_session_timeout=session,
        broker_heartbeat_interval=min(3.0, session / 3),
        broker_max_poll_records=max(5000, vsettings.batch_size),
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=2 * 1024 * 1024,
    )
    source = raw_topic(app, Topics(settings.topic_prefix), "examples.raw")

    @app.agent(source, name="validate")
    async def validate(stream: Any) -> None:
        # Batches are judged and sent here; a second task waits for their deliveries and
        # acks their events in order, so judging batch k+1 overlaps batch k's broker round
        # trip. An event is acked only once every output of its batch is acknowledged.
        send = app.producer.send
        in_flight: asyncio.Queue[tuple[Sequence[Any], list[Any], float]] = asyncio.Queue(
            maxsize=IN_FLIGHT_BATCHES
        )
        acker = asyncio.ensure_future(_ack_in_order(stream, in_flight, validator))
        try:
            async for events in stream.noack_take(
                vsettings.batch_size, within=vsettings.batch_timeout_s
            ):
                started = time.perf_counter()
                try:
                    deliveries = await validator.handle(events, send)
                except Exception:
                    _crash("judging a batch failed")
                await in_flight.put((events, deliveries, started))
        finally:
            acker.cancel()

    async def apply_specs() -> None:
        validator.apply_spec_updates()

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[Any] = args[0] if args else set()
        validator.revoked({tp.partition for tp in revoked if tp.topic == source.get_topic_name()})

    app.timer(0.5)(apply_specs)
    app.on_partitions_revoked.connect(on_revoked)

    return app


async def _ack_in_order(
    stream: Any,
    in_flight: asyncio.Queue[tuple[Sequence[Any], list[Any], float]],
    validator: Validator,
) -> None:
    """Await each batch's deliveries, then ack its events (faust commits acked offsets)."""
    while True:
        events, deliveries, started = await in_flight.get()
        try:
            await asyncio.gather(*deliveries)
            for event in events:  # only now: every output of the batch is acknowledged
                await stream.ack(event)
        except Exception:
            _crash("an output of a batch was not acknowledged by the broker")
        validator.metrics.batch_seconds.observe(time.perf_counter() - started)


def _crash(what: str) -> NoReturn:
    """Exit at once without acking or committing anything more.

    A restart redelivers everything since the last commit, exactly as after a kill -9
    (faust would otherwise wait forever for acks that cannot come).
    """
    log.critical("%s; exiting so that a restart redelivers it", what, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_CRASHED)


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


def run(boot: Startup, vsettings: ValidatorSettings) -> int:
    """Run the validator until SIGTERM/SIGINT; returns the exit code.

    ``DRIFTLINE_VALIDATOR_ENGINE``: the batch loop of :mod:`services.validator.loop` (auto,
    the default, on either Kafka client), or this faust app (faust).
    """
    settings = boot.settings
    if vsettings.uses_loop(settings.kafka_client):
        from services.validator.loop import run_loop

        return run_loop(boot, vsettings)
    topics = Topics(settings.topic_prefix)
    if settings.log_level != "DEBUG":
        # faust and mode narrate every service start and stop at INFO; ours says what matters.
        for chatty in ("faust", "mode"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    valid_partitions = check_topics(settings)
    metrics = ValidatorMetrics()
    registry = SpecRegistry()
    feed = SpecFeed(settings)
    try:
        read = feed.catch_up(registry)
        metrics.set_spec_versions(registry.versions())
        log.info(
            "read %d stream configs: %s",
            read,
            ", ".join(f"{s} v{v}" for s, v in registry.versions().items()) or "none yet",
        )
        boot.serve_metrics(metrics.metrics, vsettings.metrics_port, vsettings.metrics_host)
        feed.start()
        validator = Validator(settings, vsettings, registry, feed, metrics, valid_partitions)
        app = build_app(settings, vsettings, validator)
        log.info(
            "validating %s -> %s | %s (group %s)",
            topics.name("examples.raw"),
            validator.valid_topic,
            validator.dead_topic,
            vsettings.group(settings.topic_prefix),
        )
        boot.running()
        return run_worker(app, boot.stop, loglevel=settings.log_level)
    finally:
        feed.close()
