"""One stream, one state, whatever the producer: a librdkafka producer (crc32) and
kafka-python (murmur2) send one stream at once, the learner and the validator are killed
with -9 while it flows, and every example is learned once by one state; a redelivery
that changes what was accepted never reaches the valid topic."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer as LibrdkafkaProducer

from schemas import LabelledExample, Topics
from services.common.codec import encode
from services.common.kafka_client import canonical_partition, make_producer
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.learner_support import (
    KEY,
    checkpoints,
    config,
    examples,
    learned,
    learner_env,
    start_learner,
)
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.validator_support import (
    ValidatorProcess,
    caught_up,
    read_all,
    running_validator,
    stream_config,
    wait_until,
)

# two partitioners and kill -9 end to end: both Kafka backends (make test)
pytestmark = pytest.mark.backends

PARTITIONS = 4  # the catalogue's count for streams' topics


def split_stream() -> str:
    """A stream name that librdkafka's partitioner (crc32) and Kafka's (murmur2) put on
    different partitions, so the test's premise holds by construction."""
    for i in range(100):
        name = f"split-{i}"
        if zlib.crc32(name.encode()) % PARTITIONS != canonical_partition(name.encode(), PARTITIONS):
            return name
    raise AssertionError("no stream name splits")


def raw_of(example: LabelledExample) -> LabelledExample:
    """The example as a producer sends it (a fresh event id, no validator stamps)."""
    return example.model_copy(update={"spec_version": None, "event_id": uuid.uuid4()})


def send_librdkafka(settings: DriftlineSettings, items: list[LabelledExample]) -> None:
    """Send with confluent-kafka's producer and its default partitioner, as a Go, Rust,
    C or .NET client would."""
    producer = LibrdkafkaProducer(
        {"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    topic = Topics(settings.topic_prefix).name("examples.raw")
    for i, example in enumerate(items):
        producer.produce(topic, key=example.stream.encode(), value=encode(example))
        if i % 50 == 49:
            producer.flush()
            time.sleep(0.02)
    assert producer.flush(30) == 0


def send_kafka_python(settings: DriftlineSettings, items: list[LabelledExample]) -> None:
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name("examples.raw")
    try:
        for i, example in enumerate(items):
            producer.send(topic, key=example.stream.encode(), value=encode(example))
            if i % 50 == 49:
                producer.flush()
                time.sleep(0.02)
        producer.flush()
    finally:
        producer.close()


@pytest.mark.slow
def test_two_partitioners_and_kill_9_end_in_one_state_each_example_learned_once(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    topics = Topics(settings.topic_prefix)
    stream = split_stream()
    total, twice = 2400, 100
    cfg = config(stream, online_every=200)
    publish(settings, "streams", [cfg])
    data = [raw_of(e) for e in examples(stream, total, seed=3)]
    # evens by librdkafka, odds by kafka-python; the first ids also by the other client,
    # under new event ids: duplicates, of which the validator accepts one copy
    librdkafka = data[0::2] + [raw_of(e) for e in data[1:twice:2]]
    kafka_python = data[1::2] + [raw_of(e) for e in data[0:twice:2]]
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_EVERY="300")
    log = tmp_path / "learner.log"
    valid = topics.name("examples.valid")
    registry = Registry.open(settings, relay=False)
    senders = [
        threading.Thread(target=send_librdkafka, args=(settings, librdkafka)),
        threading.Thread(target=send_kafka_python, args=(settings, kafka_python)),
    ]
    validator = ValidatorProcess(settings, tmp_path)
    learner = start_learner(env, log)
    try:
        for sender in senders:
            sender.start()

        def learned_now() -> int:
            return learned(registry, group, valid, PARTITIONS).get(stream, 0)

        wait_for(lambda: learned_now() >= 300, 120, "a first checkpoint", learner, log)
        learner.send_signal(signal.SIGKILL)
        learner.wait(timeout=30)
        learner = start_learner(env, log)
        wait_until(
            lambda: len(read_all(settings, "examples.valid")) >= total // 2,
            120,
            "half the stream validated",
            validator,
        )
        validator.kill()
        validator = ValidatorProcess(settings, tmp_path)
        for sender in senders:
            sender.join(timeout=120)
        wait_until(lambda: caught_up(settings), 120, "the validator to catch up", validator)
        wait_for(lambda: learned_now() >= total, 180, "every example learned", learner, log)
        time.sleep(1.0)  # a last checkpoint that would count a second learning
        assert learned_now() == total
    finally:
        # stop both whatever happened, and let a failure above speak for itself
        learner.send_signal(signal.SIGTERM)
        learner_code = learner.wait(timeout=30)
        validator_code = validator.terminate()
    assert learner_code == 0, log.read_text()[-3000:]
    assert validator_code == 0, validator.log_tail()

    raw = read_all(settings, "examples.raw")
    assert len({r.partition for r in raw}) >= 2  # the premise: the producers split it
    home = canonical_partition(stream.encode(), PARTITIONS)
    states = [
        c for c in checkpoints(registry, group, valid, PARTITIONS) if stream in c.meta["streams"]
    ]
    assert len(states) == 1 and states[0].key.endswith(f"/{home}")
    valid_records = read_all(settings, "examples.valid")
    assert {r.partition for r in valid_records} == {home}
    assert {json.loads(r.value)["example_id"] for r in valid_records} == {
        e.example_id for e in data
    }
    # letters are de-duplicated by event id: the validator killed with -9 re-judges what
    # it had not committed, and re-sends the same letter
    letters = {json.loads(r.value)["event_id"]: r for r in read_all(settings, "examples.dead")}
    dead = Counter(json.loads(r.value)["reason"] for r in letters.values())
    assert dead == {"duplicate_example_id": twice}

    moves = registry.alias_history(model=stream, alias="online", limit=1000)
    targets = [m.to_version for m in reversed(moves)]
    assert targets and targets == sorted(targets), targets  # never backwards
    versions = registry.list_versions(model=stream, limit=1000)
    assert len({v.version for v in versions}) == len(versions)
    registry.close()


def test_a_redelivery_that_changes_accepted_content_never_reaches_the_valid_topic(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory()
    publish(settings, "streams", [stream_config("sea", 1)])
    topic = Topics(settings.topic_prefix).name("examples.raw")
    first: dict[str, Any] = {
        "event_type": "labelled_example",
        "event_id": str(uuid.uuid4()),
        "stream": "sea",
        "example_id": "1",
        "features": {"x": 3, "color": "red", "member": True},
        "label": True,
        "event_time": "2026-06-01T12:00:00Z",
    }
    mutations: list[dict[str, Any]] = [
        {"features": {"x": "3", "color": "red", "member": True}},
        {"features": {"x": 1e300, "color": "red", "member": True}},
        {"features": {"x": 3, "color": "red", "member": True, "extra": 1}},
        {"label": "maybe"},
        {"label": False},
        {"event_time": "2999-01-01T00:00:00Z"},
    ]
    producer = make_producer(settings)
    with running_validator(settings, tmp_path) as validator:
        producer.send(topic, key=b"sea", value=json.dumps(first).encode())
        producer.flush()
        wait_until(lambda: read_all(settings, "examples.valid"), 60, "the first copy", validator)
        for change in mutations:
            producer.send(topic, key=b"sea", value=json.dumps(first | change).encode())
        producer.send(topic, key=b"sea", value=json.dumps(first).encode())  # a true redelivery
        producer.flush()
        producer.close()
        wait_until(lambda: caught_up(settings), 60, "the validator to judge them", validator)
    valid = read_all(settings, "examples.valid")
    assert len(valid) == 2 and valid[0].value == valid[1].value  # re-emitted exactly
    dead = [json.loads(r.value) for r in read_all(settings, "examples.dead")]
    assert [d["reason"] for d in dead] == ["conflicting_redelivery"] * len(mutations)
