"""The backend seam on the real broker, with the run's backend (DRIFTLINE_KAFKA_CLIENT):
`make test` runs this file again with the confluent backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic

from services.common.kafka_backend import open_consumer, open_producer
from services.common.kafka_client import make_admin, make_consumer
from services.common.kafka_types import TopicPartition
from services.common.settings import DriftlineSettings

pytestmark = pytest.mark.backends


def test_listener_seeks_set_the_start_and_commits_reach_the_group(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory(create_topics=False)
    topic = f"{settings.topic_prefix}seam"
    admin = make_admin(settings)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.wait_for_topics([topic], timeout_ms=30_000)

    producer = open_producer(settings, client_id="seam-test")
    sent = [
        producer.send(
            topic, value=f"{p}-{i}".encode(), key=b"k", partition=p, headers=[("h", b"v")]
        )
        for p in range(3)
        for i in range(10)
    ]
    producer.flush()
    stored = [delivery.get() for delivery in sent]
    assert [(m.partition, m.offset) for m in stored] == [
        (p, i) for p in range(3) for i in range(10)
    ]
    producer.close()

    group = f"seam-{uuid.uuid4().hex[:8]}"
    consumer = open_consumer(
        settings, group_id=group, session_timeout_ms=10_000, heartbeat_interval_ms=1000
    )
    calls: list[tuple[str, list[TopicPartition]]] = []

    class Listener:
        def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
            calls.append(("assigned", sorted(assigned)))
            consumer.seek(TopicPartition(topic, 0), 5)  # a blocking call, as the learner's

        def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
            calls.append(("revoked", sorted(revoked)))

    consumer.subscribe([topic], listener=Listener())
    got: dict[int, list[bytes | None]] = {}
    deadline = time.monotonic() + 60
    while sum(map(len, got.values())) < 25 and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            assert all((r.topic, r.partition) == tp for r in records)
            assert all(r.key == b"k" and list(r.headers) == [("h", b"v")] for r in records)
            got.setdefault(tp.partition, []).extend(r.value for r in records)
    assert got == {
        0: [f"0-{i}".encode() for i in range(5, 10)],
        1: [f"1-{i}".encode() for i in range(10)],
        2: [f"2-{i}".encode() for i in range(10)],
    }
    consumer.commit({TopicPartition(topic, p): o for p, o in ((0, 10), (1, 7), (2, 10))})
    consumer.close()
    assert calls[0] == ("assigned", [TopicPartition(topic, p) for p in range(3)])
    assert calls[-1] == ("revoked", [TopicPartition(topic, p) for p in range(3)])

    admin.close()
    reader = make_consumer(settings, group_id=group)  # kafka-python: the group's view
    try:
        committed = {p: reader.committed(KafkaTopicPartition(topic, p)) for p in range(3)}
    finally:
        reader.close()
    assert committed == {0: 10, 1: 7, 2: 10}
