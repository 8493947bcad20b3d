"""Delivery: a kill -9 mid-stream loses nothing, and SIGTERM finishes, commits and exits 0."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import LabelledExample, Topics
from services.common.codec import encode, event_key
from services.common.kafka_client import end_offsets, make_producer
from services.common.settings import DriftlineSettings
from tests.integration.validator_support import (
    ValidatorProcess,
    caught_up,
    committed,
    publish,
    read_all,
    send_examples,
    source_of,
    stream_config,
    topic_total,
    wait_until,
)

# delivery after kill -9 and SIGTERM: both Kafka backends (make test)
pytestmark = pytest.mark.backends

STREAMS = [f"s{i}" for i in range(8)]  # several keys, so that every partition gets some


def produce_corpus(settings: DriftlineSettings, n: int) -> dict[str, str]:
    """``n`` raw messages: examples with unique ids (every 10th out of range) and a little
    garbage. Returns expected outcome by raw event id ('valid' or 'dead')."""
    publish(settings, *(stream_config(s, 1) for s in STREAMS))
    topic = Topics(settings.topic_prefix).name("examples.raw")
    producer = make_producer(settings)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    expected: dict[str, str] = {}
    try:
        for i in range(n):
            if i % 97 == 0:
                producer.send(topic, key=STREAMS[i % 8].encode(), value=b"\x00garbage%d" % i)
                continue
            example = LabelledExample(
                stream=STREAMS[i % 8],
                example_id=f"e{i}",
                features={
                    "x": 50.0 if i % 10 == 0 else float(i % 10),
                    "color": "red",
                    "member": i % 3 == 0,
                },
                label=i % 2 == 0,
                event_time=t0 + timedelta(milliseconds=i),
            )
            expected[str(example.event_id)] = "dead" if i % 10 == 0 else "valid"
            producer.send(topic, key=event_key(example), value=encode(example))
        producer.flush()
    finally:
        producer.close()
    return expected


def produce_duplicates(settings: DriftlineSettings, numbers: list[int]) -> set[str]:
    """Examples re-using accepted example ids under new event ids; returns those ids."""
    features = {"x": 1.0, "color": "red", "member": None}
    return send_examples(settings, STREAMS, numbers, features=features, label=True)


def outputs(settings: DriftlineSettings) -> tuple[list[Any], list[Any]]:
    return read_all(settings, "examples.valid"), read_all(settings, "examples.dead")


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_accounts_for_every_example(
    settings_factory: Callable[..., DriftlineSettings],
    tmp_path: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    settings = settings_factory()
    n = 20_000
    expected = produce_corpus(settings, n)
    raw_total = topic_total(settings, "examples.raw")
    assert raw_total == n

    env = {"DRIFTLINE_VALIDATOR_BATCH_SIZE": "250"}
    first = ValidatorProcess(settings, tmp_path, **env)
    try:
        wait_until(
            lambda: topic_total(settings, "examples.valid") >= n // 4,
            120,
            "a quarter of the examples to be validated",
            first,
        )
    finally:
        first.kill()  # kill -9, mid-stream
    at_kill = topic_total(settings, "examples.valid") + topic_total(settings, "examples.dead")
    assert at_kill < n, "the validator finished before it was killed: nothing was tested"

    second = ValidatorProcess(settings, tmp_path, **env)
    try:
        wait_until(lambda: caught_up(settings), 180, "the restarted validator to catch up", second)
        # True duplicates of examples the killed process accepted: only the duplicate index
        # rebuilt from the valid topic at restart can tell.
        duplicates = produce_duplicates(settings, [i for i in range(1, 400) if i % 10 and i % 97])
        expected |= {d: "dead" for d in duplicates}
        wait_until(lambda: caught_up(settings), 60, "the duplicates to be judged", second)
    finally:
        assert second.terminate() == 0, second.log_tail()
    valid, dead = outputs(settings)
    reasons = Counter(
        json.loads(r.value)["reason"]
        for r in dead
        if json.loads(r.value)["source_event_id"] in duplicates
    )
    assert reasons == {"duplicate_example_id": len(duplicates)}
    total = n + len(duplicates)

    valid_ids: Counter[tuple[str, str]] = Counter()
    valid_raw: dict[str, bytes] = {}
    for record in valid:
        doc = json.loads(record.value)
        valid_ids[(doc["stream"], doc["example_id"])] += 1
        raw_id = doc["raw_event_id"]
        # a redelivered example is re-emitted byte for byte (same derived event id)
        assert valid_raw.setdefault(raw_id, record.value) == record.value
        assert record.key == doc["stream"].encode()
    dead_raw = {json.loads(r.value)["source_event_id"] for r in dead} - {None}
    dead_docs = [json.loads(r.value) for r in dead]
    # by example id too (the deliberate duplicates aside)
    dead_ids = {
        (d["stream"], d["example_id"]) for d in dead_docs if d["source_event_id"] not in duplicates
    }

    # every produced example is in valid or dead, never both, and where it belongs
    assert set(valid_raw) | dead_raw == set(expected)
    assert not set(valid_raw) & dead_raw
    assert {e for e, where in expected.items() if where == "valid"} == set(valid_raw)
    assert not set(valid_ids) & dead_ids
    # de-duplication by (stream, example_id) leaves each example exactly once
    assert len(valid_ids) == sum(1 for w in expected.values() if w == "valid")
    # every raw position produced exactly one kind of output (garbage included)
    valid_positions = {source_of(r) for r in valid}
    dead_positions = {source_of(r) for r in dead}
    assert not valid_positions & dead_positions
    assert len(valid_positions | dead_positions) == total
    redelivered = len(valid) + len(dead) - total
    record_property("redelivered_duplicates", redelivered)
    record_property("outputs_at_kill", at_kill)
    print(f"kill -9 after {at_kill} of {n} outputs; {redelivered} redelivered duplicates")  # noqa: T201
    assert redelivered >= 0


@pytest.mark.slow
def test_sigterm_finishes_the_batch_commits_and_exits_0(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory()
    n = 12_000
    produce_corpus(settings, n)
    env = {"DRIFTLINE_VALIDATOR_BATCH_SIZE": "500"}
    proc = ValidatorProcess(settings, tmp_path, **env)
    wait_until(
        lambda: topic_total(settings, "examples.valid") >= n // 5,
        120,
        "a fifth of the examples to be validated",
        proc,
    )
    started = time.monotonic()
    code = proc.terminate(timeout_s=30)
    stopped_in = time.monotonic() - started
    assert code == 0, proc.log_tail()
    assert stopped_in < 10, f"took {stopped_in:.1f}s to stop"

    raw = Topics(settings.topic_prefix).name("examples.raw")
    done = committed(settings, f"{settings.topic_prefix}validator", raw)
    valid, dead = outputs(settings)
    positions = Counter(source_of(r) for r in valid + dead)
    assert all(c == 1 for c in positions.values())
    # what was committed is exactly what was output: no unfinished batch, no lost commit
    for partition, end in end_offsets(settings, raw).items():
        out = sorted(o for p, o in positions if p == partition)
        assert out == list(range(done.get(partition, 0))), partition
        assert done.get(partition, 0) <= end
    assert sum(done.values()) < n, "the validator finished before SIGTERM: nothing was tested"

    proc = ValidatorProcess(settings, tmp_path, **env)  # a restart redelivers nothing
    try:
        wait_until(lambda: caught_up(settings), 120, "the restart to catch up", proc)
    finally:
        assert proc.terminate() == 0, proc.log_tail()
    valid, dead = outputs(settings)
    assert len(valid) + len(dead) == n
    assert uuid.UUID(json.loads(valid[0].value)["event_id"])
