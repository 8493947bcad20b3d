"""The validator's per-batch work, shared by the batch loop (:mod:`services.validator.loop`)
and the opt-in faust agent (:mod:`services.validator.faust_agent`): judge each raw record
with :func:`services.validator.rules.judge`, route it, keep the duplicate index current.

Partitions: one stream, one partition of the valid topic. Producers pick raw partitions
with whatever partitioner their client has (murmur2 in Java and kafka-python, crc32 or
consistent-random in librdkafka clients, none at all), so one stream may arrive on
several raw partitions; the validator sends each valid example, keyed by its stream, to
the stream's canonical partition (:func:`~services.common.kafka_client.canonical_partition`,
the Java client's murmur2 of the stream name, over the valid topic's partition count
read at start), so every valid example of a stream is learned by one state in one place.
The duplicate index (:mod:`services.validator.index_rebuild`) is therefore one per
process, over every stream. Dead letters are keyed by stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from schemas import LabelledExample, ReasonCode, Topics, utcnow
from services.common.codec import dead_letter, encode, event_key
from services.common.kafka_client import canonical_partition
from services.common.logs import at
from services.common.settings import DriftlineSettings
from services.validator.dedupe import DuplicateIndex
from services.validator.index_rebuild import load_index
from services.validator.metrics import ValidatorMetrics
from services.validator.rules import SERVICE, Position, QualityStats, judge
from services.validator.settings import ValidatorSettings
from services.validator.spec_feed import SpecFeed, apply_update
from services.validator.specs import SpecRegistry

log = logging.getLogger(__name__)

# Header on every valid example: the raw message it came from, "<topic>/<partition>/<offset>".
SOURCE_HEADER: Final = "driftline-source"
_REJECT_LOGS_PER_S: Final = 10
# Exit status when an output was not acknowledged or a batch could not be judged.
EXIT_CRASHED: Final = 70


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
    """The per-batch work of the batch loop and the faust agent: judge, route, send."""

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
            changed = apply_update(self.registry, update) or changed
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


def crash(what: str) -> NoReturn:
    """Exit at once without acking or committing anything more.

    A restart redelivers everything since the last commit, exactly as after a kill -9
    (faust would otherwise wait forever for acks that cannot come).
    """
    log.critical("%s; exiting so that a restart redelivers it", what, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_CRASHED)
