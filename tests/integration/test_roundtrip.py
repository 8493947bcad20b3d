"""Events round-trip kafka-python producer -> faust agent -> kafka-python consumer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from schemas import LabelledExample, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import make_consumer, make_producer
from services.common.settings import DriftlineSettings

ECHO = Path(__file__).with_name("faust_echo.py")


def examples(n: int) -> list[LabelledExample]:
    return [
        LabelledExample(
            stream=f"s{i % 3}",
            example_id=str(i),
            features={"x": i * 0.5, "c": "a", "b": True},
            label=i % 2 == 0,
            event_time=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for i in range(n)
    ]


def test_producer_faust_consumer(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory()
    topics = Topics(settings.topic_prefix)
    sent = examples(600)
    producer = make_producer(settings)
    for ex in sent:
        producer.send(topics.name("examples.raw"), key=event_key(ex), value=encode(ex))
    producer.flush()
    producer.close()

    env = os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(Path.cwd()),
    }
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, str(ECHO)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    received: dict[str, LabelledExample] = {}
    consumer = make_consumer(
        settings, topics.name("examples.valid"), group_id=f"{settings.topic_prefix}check"
    )
    try:
        deadline = time.monotonic() + 90
        while len(received) < len(sent) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    event = decode(record.value, topics.spec_of(record.topic))
                    assert isinstance(event, LabelledExample)
                    assert record.key == event.stream.encode()
                    received[str(event.event_id)] = event
    finally:
        consumer.close()
        worker.terminate()
        worker.wait(timeout=30)
    assert set(received) == {str(e.event_id) for e in sent}
    for ex in sent:
        got = received[str(ex.event_id)]
        assert got.spec_version == 1
        assert got.model_copy(update={"spec_version": None}) == ex
