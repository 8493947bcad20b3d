"""make_consumer takes its fetch settings from DriftlineSettings (real broker), and a
partition with data is read while the others stay empty."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas import Topics
from schemas.topics import STREAM_PARTITIONS
from services.common.kafka_client import assign_all, make_consumer, make_producer
from services.common.settings import DriftlineSettings
from tests.integration.polling import wait_for

pytestmark = pytest.mark.integration


def test_consumers_take_the_fetch_settings(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory(
        create_topics=False,
        kafka_fetch_max_wait_ms=7,
        kafka_fetch_min_bytes=3,
        kafka_max_poll_records=123,
        kafka_max_partition_fetch_bytes=64 * 1024,
        kafka_fetch_max_bytes=1024 * 1024,
    )
    consumer = make_consumer(settings, group_id=None)
    try:
        cfg = consumer.config
        assert (cfg["fetch_max_wait_ms"], cfg["fetch_min_bytes"], cfg["max_poll_records"]) == (
            7,
            3,
            123,
        )
        assert (cfg["max_partition_fetch_bytes"], cfg["fetch_max_bytes"]) == (
            64 * 1024,
            1024 * 1024,
        )
    finally:
        consumer.close()
    own = make_consumer(settings, group_id=None, max_poll_records=9)  # a service's override
    try:
        assert own.config["max_poll_records"] == 9 and own.config["fetch_max_wait_ms"] == 7
    finally:
        own.close()


def test_one_busy_partition_among_empty_ones_is_read_to_its_end(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory(kafka_max_poll_records=50)
    topic = Topics(settings.topic_prefix).name("examples.valid")
    assert STREAM_PARTITIONS > 2  # one busy partition among empty ones
    producer = make_producer(settings)
    for i in range(1000):
        producer.send(topic, value=str(i).encode(), partition=2)
    producer.flush()
    producer.close()
    consumer = make_consumer(settings, group_id=None)
    seen: list[int] = []
    try:
        assign_all(consumer, topic)
        assert consumer.config["fetch_max_wait_ms"] == 20  # the default, not kafka-python's 500

        def all_read() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                seen.extend(int(r.value) for r in records)
            return len(seen) >= 1000

        wait_for(all_read, timeout_s=60, what="1,000 records of one partition")
    finally:
        consumer.close()
    assert seen == list(range(1000))
