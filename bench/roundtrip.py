"""roundtrip: events/s produced and consumed through the real broker, against
in-process encode + decode of the same events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from kafka import TopicPartition

from bench.harness import Result, Stopwatch, broker_settings
from schemas import LabelledExample, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import ensure_topics, make_admin, make_consumer, make_producer


def make_events(n: int) -> list[LabelledExample]:
    """``n`` labelled examples with 10 numeric and 2 categorical features."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        LabelledExample(
            stream=f"s{i % 4}",
            example_id=str(i),
            features={
                **{f"x{j}": (i * 31 + j) % 997 / 997 for j in range(10)},
                "c1": "abc"[i % 3],
                "c2": i % 2 == 0,
            },
            label=i % 3 == 0,
            event_time=t0 + timedelta(seconds=i),
        )
        for i in range(n)
    ]


def run(quick: bool) -> Result:
    """Run the benchmark; ``quick`` uses 20,000 events instead of 200,000."""
    n = 20_000 if quick else 200_000
    events = make_events(n)
    spec = Topics().spec_of(Topics().name("examples.raw"))

    with Stopwatch() as base:
        for event in events:
            decode(encode(event), spec)
    baseline = n / base.seconds

    with broker_settings() as settings:
        topics = Topics(settings.topic_prefix)
        topic = topics.name("examples.raw")
        admin = make_admin(settings)
        ensure_topics(admin, {topic: topics.all()[topic]})
        admin.close()

        consumer = make_consumer(settings, group_id=None, max_poll_records=5000)
        parts = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        received = 0
        done = threading.Event()

        def consume() -> None:
            nonlocal received
            deadline = time.monotonic() + 600
            while received < n and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        decode(record.value, spec)
                    received += len(records)
            done.set()

        producer = make_producer(settings)
        reader = threading.Thread(target=consume, daemon=True)
        with Stopwatch() as total:
            reader.start()
            with Stopwatch() as produce:
                for event in events:
                    producer.send(topic, key=event_key(event), value=encode(event))
                producer.flush()
            done.wait()
        reader.join()
        consumer.close()
        producer.close()
    if received != n:
        raise RuntimeError(f"consumed {received} of {n} events")
    value = n / total.seconds
    rows = [
        ("in-process encode+decode (baseline)", n, base.seconds, baseline),
        ("produce through broker (acks=all)", n, produce.seconds, n / produce.seconds),
        ("produce + consume + decode, end to end", n, total.seconds, value),
    ]
    return Result(
        bench="roundtrip",
        value=value,
        unit="events/s",
        baseline=baseline,
        rows=rows,
        columns=("phase", "events", "seconds", "events/s"),
    )
