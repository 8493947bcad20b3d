"""The validator's batch loop: the default on both Kafka clients.

The same consume -> judge -> produce -> commit-after-ack loop the learner uses, with one
consumer in the validator's group and one producer: poll a batch (up to
``DRIFTLINE_VALIDATOR_BATCH_SIZE`` records), judge every record with the pure core
:func:`services.validator.rules.judge`, send each outcome, flush, and check that the
broker acknowledged every one. Routing and the duplicate index
(:mod:`services.validator.batch`) and the spec feed (:mod:`services.validator.spec_feed`)
are shared with the opt-in faust agent of :mod:`services.validator.faust_agent`
(``DRIFTLINE_VALIDATOR_ENGINE=faust``), so both keep the same guarantees.

Delivery is at-least-once and an offset is committed only after its output was
acknowledged (acks=all): a batch's next offsets become committable only once every output
of it is acknowledged; they are committed at once when a poll finds the validator caught
up (a batch shorter than the batch size), else every ``commit_interval_s``, before
partitions are given up in a rebalance (nothing is in flight between polls, where the
listener runs) and on SIGTERM. Partitions lost without a rebalance (the member was
evicted) are forgotten uncommitted: their new owner redelivers from the group's last
commit. An output that is not acknowledged makes the process exit at once with status 70
without committing anything more, so a restart redelivers, exactly as after a kill -9.

On kafka-python, rebalance listeners run in a worker thread while the client's IO loop
awaits them, and a group rejoin that ends between two polls is applied (both in
:class:`services.common.kafka_client.KafkaPythonConsumer`): without the latter, this loop's
100 ms polls on a loaded machine once left it consuming nothing for 300 s in a demo run.
librdkafka heartbeats from its own C threads and calls listeners on the polling thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from schemas import Topics, utcnow
from services.common.bootstrap import Startup, quiet_collector
from services.common.kafka_backend import is_fenced, open_consumer, open_producer
from services.common.kafka_types import Consumer, Producer, TopicPartition
from services.common.shutdown import GracefulShutdown
from services.validator.app import check_topics, start_feed
from services.validator.batch import Validator, crash
from services.validator.dedupe import DuplicateIndex
from services.validator.metrics import ValidatorMetrics
from services.validator.settings import ValidatorSettings
from services.validator.spec_feed import SpecFeed
from services.validator.specs import SpecRegistry

log = logging.getLogger(__name__)

# The largest request the producer sends: a dead letter carries its raw message whole.
_MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024


class BatchValidator(Validator):
    """The per-batch work without an event loop: judge, send, return the deliveries."""

    def index_now(self, partitions: set[int]) -> DuplicateIndex:
        """The duplicate index, rebuilt (between batches, when the valid topic holds every
        output this process sent) at the first batch and after the raw partitions changed."""
        if self.index is not None and not self.stale and partitions <= self.seen:
            return self.index
        return self.rebuild_index(partitions)

    def handle_batch(self, records: Sequence[Any], send: Callable[..., Any]) -> list[Any]:
        """Judge a batch and send every outcome; returns the deliveries."""
        index = self.index_now({record.partition for record in records})
        now = utcnow()
        deliveries = [self._send_one(record, index, now, send) for record in records]
        self.metrics.observe(self.stats)
        self.metrics.dedupe_ids.set(len(index))
        return deliveries

    def _send_one(
        self, record: Any, index: DuplicateIndex, now: Any, send: Callable[..., Any]
    ) -> Any:
        out = self.outgoing(record, index, now)
        return send(
            out.topic, value=out.value, key=out.key, headers=out.headers, partition=out.partition
        )


@dataclass
class Loop:
    """The consume -> judge -> produce -> commit-after-ack loop around a validator.

    ``acked`` holds, per raw partition, the next offset whose every earlier record has
    an acknowledged output; ``committed`` is what the group has of it.
    """

    validator: BatchValidator
    consumer: Consumer
    producer: Producer
    raw_topic: str
    batch_size: int
    poll_timeout_ms: int
    commit_interval_s: float
    acked: dict[TopicPartition, int] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    last_commit: float = field(default_factory=time.monotonic)

    def run(self, stop: GracefulShutdown) -> None:
        """Validate until ``stop`` is requested, then commit what the last batch covered."""
        loop = self

        class Listener:
            def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
                loop.revoked(revoked)

            def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
                pass  # the group's committed offsets are where to start

            def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
                loop.forget(lost)  # evicted: nothing can be committed for them

        self.consumer.subscribe([self.raw_topic], listener=Listener())
        while not stop.requested:
            self.step()
        self.commit()

    def step(self) -> None:
        """One poll: judge and send what came, wait for every output to be acknowledged,
        then make its offsets committable; commit when due or caught up."""
        self.validator.apply_spec_updates()
        polled = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
        records = [record for batch in polled.values() for record in batch]
        if records:
            started = time.perf_counter()
            try:
                deliveries = self.validator.handle_batch(records, self.producer.send)
            except Exception:
                crash("judging or sending a batch failed")
            self._settle(deliveries)
            self.acked.update({tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch})
            self.validator.metrics.batch_seconds.observe(time.perf_counter() - started)
        # A short batch means the consumer is caught up: commit at once, so that an idle
        # validator has nothing to redeliver; under load, every commit_interval_s.
        caught_up = len(records) < self.batch_size
        if caught_up or time.monotonic() - self.last_commit >= self.commit_interval_s:
            self.commit()

    def _settle(self, deliveries: list[Any]) -> None:
        """Send what the producer holds, wait until the broker answered for every output;
        exit without committing if one was not acknowledged."""
        try:
            self.producer.flush()  # the producer's delivery timeout bounds the wait
            for delivery in deliveries:
                delivery.get()  # answered after the flush; raises what the producer gave up
        except Exception:
            crash("an output of a batch was not acknowledged by the broker")

    def commit(self) -> None:
        """Commit every acknowledged offset the group does not have yet."""
        self.last_commit = time.monotonic()
        due = {tp: o for tp, o in self.acked.items() if self.committed.get(tp) != o}
        if not due:
            return
        try:
            self.consumer.commit(due)
        except Exception as exc:  # a later commit (or a redelivery) covers it
            if is_fenced(exc):  # another replica runs under this instance id: stop
                raise
            log.warning("committing offsets failed (they will be redelivered if lost): %s", exc)
            return
        self.committed.update(due)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Before partitions go (no batch is in flight between polls): commit, forget."""
        self.commit()
        self.forget(partitions)

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Drop what is known of ``partitions``; the index is rebuilt at the next batch."""
        for tp in partitions:
            self.acked.pop(tp, None)
            self.committed.pop(tp, None)
        self.validator.revoked({tp.partition for tp in partitions if tp.topic == self.raw_topic})


def run_loop(boot: Startup, vsettings: ValidatorSettings) -> int:
    """Run the batch loop until SIGTERM/SIGINT; returns the exit code."""
    settings = boot.settings
    raw = Topics(settings.topic_prefix).name("examples.raw")
    valid_partitions = check_topics(settings)
    metrics = ValidatorMetrics()
    registry = SpecRegistry()
    feed = SpecFeed(settings)
    consumer: Consumer | None = None
    producer: Producer | None = None
    try:
        start_feed(boot, vsettings, registry, feed, metrics)
        validator = BatchValidator(settings, vsettings, registry, feed, metrics, valid_partitions)
        session_ms = int(vsettings.session_timeout_s * 1000)
        consumer = open_consumer(
            settings,
            group_id=vsettings.group(settings.topic_prefix),
            group_instance_id=vsettings.member(settings),  # static: fast restarts
            client_id="driftline-validator",
            max_poll_records=vsettings.batch_size,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(100, min(3000, session_ms // 3)),
        )
        producer = open_producer(
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
            "validating %s -> %s | %s (group %s, %s client)",
            raw,
            validator.valid_topic,
            validator.dead_topic,
            vsettings.group(settings.topic_prefix),
            settings.kafka_client,
        )
        quiet_collector()
        boot.running()
        loop.run(boot.stop)
        return 0
    finally:
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.close(timeout=5)
        feed.close()
