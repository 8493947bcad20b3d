"""Offsets and partitions: a topic's bounds, reading a range back, assigning a consumer
to partitions, and the producer's partition for a key."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaConsumer,
    TopicPartition,
)
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from services.common.errors import BrokerError, BrokerUnavailable, DataExpired
from services.common.kafka_client.connect import make_consumer
from services.common.settings import DriftlineSettings


def offset_bounds(settings: DriftlineSettings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The first and the next offset of every partition of ``topic``.

    A broker that fails the request raises :class:`BrokerError` (a missing topic:
    :class:`BrokerUnavailable`), so callers can tell a broker problem from their own.
    """
    consumer = make_consumer(settings, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerUnavailable(f"topic {topic!r} does not exist on {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        return (
            {tp.partition: int(begin[tp]) for tp in tps},
            {tp.partition: int(end[tp]) for tp in tps},
        )
    except KafkaError as exc:
        raise BrokerError(f"offsets of {topic}: {exc}") from exc
    finally:
        consumer.close()


def end_offsets(settings: DriftlineSettings, topic: str) -> dict[int, int]:
    """The next offset to be written, per partition of ``topic``."""
    return offset_bounds(settings, topic)[1]


def read_between(
    settings: DriftlineSettings,
    topic: str,
    start: Mapping[int, int],
    end: Mapping[int, int],
    *,
    timeout_s: float = 60.0,
) -> Iterator[Any]:
    """Every record of ``topic`` with ``start[p] <= offset < end[p]``, partition by partition
    interleaved as fetched. Raises BrokerError if the range is not read within ``timeout_s``
    (for example because it has left the topic's retention)."""
    wanted = {p: (start.get(p, 0), e) for p, e in end.items() if e > start.get(p, 0)}
    if not wanted:
        return
    consumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        tps = {p: TopicPartition(topic, p) for p in wanted}
        earliest = consumer.beginning_offsets(list(tps.values()))
        gone = {p: earliest[tps[p]] for p, (a, _) in wanted.items() if earliest[tps[p]] > a}
        if gone:
            detail = ", ".join(
                f"partition {p} starts at {first}, wanted {wanted[p][0]}"
                for p, first in gone.items()
            )
            raise DataExpired(f"{topic}: the data has left the topic's retention ({detail})")
        consumer.assign(list(tps.values()))
        for p, (first, _) in wanted.items():
            consumer.seek(tps[p], first)
        remaining = dict(wanted)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                left = {p: f"[{a}, {b})" for p, (a, b) in remaining.items()}
                raise BrokerError(f"timed out reading {topic} ranges {left}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                if tp.partition not in remaining:
                    continue
                stop = remaining[tp.partition][1]
                for record in records:
                    if record.offset >= stop:
                        break
                    yield record
                last = records[-1].offset + 1 if records else 0
                if last >= stop:
                    del remaining[tp.partition]
                    consumer.pause(tp)
    finally:
        consumer.close()


def read_tails(
    settings: DriftlineSettings,
    topic: str,
    partitions: Iterable[int],
    window: int,
    *,
    client_id: str,
    timeout_s: float,
) -> Iterator[Any]:
    """The last ``window`` records of each of ``partitions`` of ``topic`` (all of them
    where a partition holds fewer), up to the end offsets seen at the start, read by a
    group-less consumer. Raises BrokerError when they are not read within ``timeout_s``."""
    consumer = make_consumer(settings, group_id=None, client_id=client_id, max_poll_records=5000)
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
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"timed out reading the last {window} records of {topic}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    yield record
            for tp in list(pending):
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()


def assign_all(
    consumer: KafkaConsumer, topic: str | Sequence[str], *, from_beginning: bool = True
) -> list[Any]:
    """Assign every partition of ``topic`` (or of several topics) to a group-less consumer."""
    tps: list[Any] = []
    for name in [topic] if isinstance(topic, str) else topic:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            raise BrokerError(f"topic {name!r} does not exist; run `driftline topics create`")
        tps.extend(TopicPartition(name, p) for p in sorted(partitions))
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    return tps


def assign_at(consumer: KafkaConsumer, topic: str, partition: int, offset: int) -> Any:
    """Assign one partition to a group-less consumer at ``offset``; returns the partition
    (for ``end_offsets``, ``highwater``). Online followers read their stream this way."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    return tp


def caught_up(consumer: KafkaConsumer, tps: list[Any]) -> bool:
    """True when the consumer's position is at the end of every partition."""
    end = consumer.end_offsets(tps)
    return all(consumer.position(tp) >= end[tp] for tp in tps)


def canonical_partition(key: bytes, count: int) -> int:
    """The partition Kafka's Java client (and kafka-python) give ``key`` among ``count``:
    murmur2 of the key, made positive, modulo the count.

    Whatever partitioner a producer used, a service that routes by this function puts
    every record of one key on one partition (the validator does so for streams).

    >>> canonical_partition(b"phishing", 4), canonical_partition(b"phishing", 1)
    (1, 0)
    """
    if count < 1:
        raise ValueError("a topic has at least one partition")
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % count


def subscribe_from_beginning(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    """Join the consumer's group on ``topic`` but read every partition it is given from
    the beginning; returns the offsets the group had committed (by partition, 0 for none).

    For a group that remembers how far it handled a topic while still reading what came
    before (``driftline dlq replay``); the caller commits as usual.
    """
    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    committed = {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions}

    class FromBeginning(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            if assigned:
                consumer.seek_to_beginning(*assigned)

    consumer.subscribe([topic], listener=FromBeginning())
    return committed
