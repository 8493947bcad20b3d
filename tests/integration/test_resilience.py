"""A consumer survives a broker restart; a wrong address fails fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kafka.admin import NewTopic

from services.common.errors import BrokerUnavailable
from services.common.kafka_client import make_admin, make_consumer, make_producer
from services.common.settings import DriftlineSettings


def drain(consumer: Any, want: int, seen: set[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(seen) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.update(r.value for r in records)
    consumer.commit()


def test_consumer_survives_broker_restart(own_broker: Callable[..., Any]) -> None:
    broker = own_broker()
    bootstrap = broker.start()
    settings = DriftlineSettings.load(env={}, kafka_bootstrap=bootstrap, kafka_timeout_s=60)
    admin = make_admin(settings)
    admin.create_topics([NewTopic("restart", 2, 1)])
    admin.close()

    producer = make_producer(settings)
    consumer = make_consumer(
        settings,
        "restart",
        group_id="restart-g",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    seen: set[bytes] = set()
    for i in range(200):
        producer.send("restart", key=str(i % 5).encode(), value=f"before-{i}".encode())
    producer.flush()
    drain(consumer, 200, seen)
    assert len(seen) == 200

    broker.stop()
    broker.start()

    for i in range(200):
        producer.send("restart", key=str(i % 5).encode(), value=f"after-{i}".encode())
    producer.flush(timeout=60)
    drain(consumer, 400, seen)
    consumer.close()
    producer.close()
    assert seen == {f"before-{i}".encode() for i in range(200)} | {
        f"after-{i}".encode() for i in range(200)
    }


@pytest.mark.timeout(60)  # "fails fast, not a hang": a hang trips the timeout
def test_wrong_bootstrap_fails_fast() -> None:
    settings = DriftlineSettings.load(env={}, kafka_bootstrap="127.0.0.1:1", kafka_timeout_s=3)
    with pytest.raises(BrokerUnavailable, match="DRIFTLINE_KAFKA_BOOTSTRAP"):
        make_producer(settings)
