"""Fuzz: 10,000 random and mutated messages through the running validator and the broker.

The corpus is generated first with hypothesis, produced in bulk and polled once the
validator has committed everything. Each message must land in exactly one of
``examples.valid`` or ``examples.dead``, with the verdict the pure core gives the same
bytes in the same order (valid examples byte for byte).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schemas import DeadLetter, LabelledExample, ReasonCode, Topics
from services.common.codec import decode, encode
from services.common.kafka_client import canonical_partition, end_offsets, make_producer
from services.common.settings import DriftlineSettings
from services.validator.dedupe import DuplicateIndex
from services.validator.rules import Position, judge
from services.validator.specs import SpecRegistry
from tests.integration.validator_support import (
    caught_up,
    publish,
    read_all,
    running_validator,
    source_of,
    stream_config,
    wait_until,
)

CORPUS_SIZE = 10_000
SEEDS = 1_000  # made by hypothesis; the rest are mutations of them
STREAMS = ("fa", "fb", "fc")
EVENT_IDS = [str(uuid.UUID(int=i + 1)) for i in range(40)]  # a small pool: some collide

json_scalars = (
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
# Event times far in the past or far in the future: no verdict depends on the exact clock.
past = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
).map(lambda t: t.isoformat())
future = st.datetimes(
    min_value=datetime(2099, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda t: t.isoformat())


@st.composite
def example_doc(draw: st.DrawFn) -> dict[str, Any]:
    """An example: mostly valid, sometimes with a bad value, a missing or an extra part."""

    def sometimes(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 12) -> Any:
        return draw(bad) if draw(st.integers(0, odds - 1)) == 0 else draw(good)

    features: dict[str, Any] = {
        "x": sometimes(st.integers(0, 10) | st.floats(0, 10), st.floats() | json_scalars),
        "color": sometimes(
            st.sampled_from(["red", "green", "blue"]), json_scalars | st.just("purple")
        ),
        "member": sometimes(st.booleans() | st.none(), json_scalars),
    }
    if draw(st.integers(0, 24)) == 0:
        features.pop(draw(st.sampled_from(sorted(features))))
    if draw(st.integers(0, 24)) == 0:
        features[draw(st.text(min_size=1, max_size=5))] = draw(json_scalars)
    doc: dict[str, Any] = {
        "event_type": "labelled_example",
        "schema_version": sometimes(st.just(1), st.sampled_from([0, 2, "1"]), 40),
        "event_id": draw(st.sampled_from(EVENT_IDS) | st.uuids().map(str) | st.uuids().map(str)),
        "stream": sometimes(st.sampled_from(STREAMS), st.just("unknown-stream"), 30),
        "example_id": str(draw(st.integers(0, 5000))),
        "features": features,
        "label": sometimes(st.booleans(), json_scalars),
        "event_time": sometimes(past, future, 30),
    }
    if draw(st.integers(0, 29)) == 0:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    if draw(st.integers(0, 29)) == 0:
        doc[draw(st.sampled_from(sorted(doc)))] = draw(json_values)
    return doc


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def message(draw: st.DrawFn) -> bytes:
    """One raw message: mostly examples, some garbage."""
    kind = draw(st.sampled_from(["example"] * 8 + ["binary", "json", "truncated"]))
    if kind == "binary":
        return draw(st.binary(max_size=120))
    if kind == "json":
        return _dumps(draw(json_values))
    whole = _dumps(draw(example_doc()))
    if kind == "truncated":
        return whole[: draw(st.integers(0, len(whole) - 1))]
    return whole


# Values a mutation puts in place of a feature or a field.
PALETTE: list[Any] = [
    None,
    "abc",
    "",
    math.inf,
    -math.inf,
    math.nan,
    -1,
    11,
    10**30,
    True,
    False,
    "purple",
    5,
    2.5,
    [1],
    {"a": 1},
    "2026-01-01T00:00:00Z",
    0,
]


def mutate(value: bytes, rng: random.Random) -> bytes:
    """A variant of a hypothesis-made message: re-sent, re-identified, damaged or bloated."""
    roll = rng.random()
    if roll < 0.01:
        return b" " * 70_000 + value  # oversize, still valid JSON
    if roll < 0.05 and value:
        data = bytearray(value)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if roll < 0.08:
        return value[: rng.randrange(len(value) + 1)]
    try:
        doc = json.loads(value)
    except ValueError:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
    if not isinstance(doc, dict) or not doc or roll < 0.12:
        return value  # the same bytes again: a producer's resend
    doc = dict(doc)
    if rng.random() < 0.8:
        doc["example_id"] = str(rng.randint(0, 20_000))
        doc["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    change = rng.random()
    features = doc.get("features")
    if change < 0.25 and isinstance(features, dict):
        doc["features"] = {**features, rng.choice(["x", "color", "member"]): rng.choice(PALETTE)}
    elif change < 0.3 and isinstance(features, dict) and features:
        doc["features"] = {k: v for k, v in features.items() if k != rng.choice(sorted(features))}
    elif change < 0.35:
        doc[rng.choice(sorted(doc))] = rng.choice(PALETTE)
    elif change < 0.38:
        doc.pop(rng.choice(sorted(doc)))
    return json.dumps(doc, allow_nan=True).encode()


def generate_corpus() -> list[bytes]:
    """SEEDS messages from hypothesis, then mutated variants of them up to CORPUS_SIZE."""
    seeds: list[bytes] = []

    @settings(
        max_examples=SEEDS // 50,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(message(), min_size=50, max_size=50))
    def collect(chunk: list[bytes]) -> None:
        seeds.extend(chunk)

    collect()
    rng = random.Random(20261123)
    corpus = list(seeds)
    while len(corpus) < CORPUS_SIZE:
        corpus.append(mutate(rng.choice(seeds), rng))
    return corpus


def oracle(
    settings: DriftlineSettings, raw: list[Any], now: datetime
) -> dict[tuple[int, int], Any]:
    """What the pure core says of every raw record, judged partition by partition in order
    with one duplicate index (a stream's raw messages share a partition here: keyed)."""
    registry = SpecRegistry()
    for stream in STREAMS:
        registry.apply(stream_config(stream, 1))
    index = DuplicateIndex()
    verdicts = {}
    for record in sorted(raw, key=lambda r: (r.partition, r.offset)):
        position = Position(record.topic, record.partition, record.offset, record.key)
        verdicts[(record.partition, record.offset)] = judge(
            record.value or b"", position, registry, index, now
        )
    return verdicts


@pytest.mark.slow
def test_fuzz_corpus_lands_once_each_with_the_core_verdict(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    corpus = generate_corpus()
    assert len(corpus) == CORPUS_SIZE
    settings = settings_factory()
    publish(settings, *(stream_config(s, 1) for s in STREAMS))
    topic = Topics(settings.topic_prefix).name("examples.raw")
    producer = make_producer(settings, max_request_size=2 * 1024 * 1024)
    try:
        for value in corpus:
            try:
                stream = json.loads(value).get("stream")
            except (ValueError, AttributeError):
                stream = None
            key = stream.encode() if isinstance(stream, str) else None
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()

    with running_validator(settings, tmp_path) as validator:
        wait_until(lambda: caught_up(settings), 240, "the validator to judge the corpus", validator)
        assert validator.popen.poll() is None, validator.log_tail()
    now = datetime.now(UTC)
    raw = read_all(settings, "examples.raw")
    valid = read_all(settings, "examples.valid")
    dead = read_all(settings, "examples.dead")

    positions = Counter(source_of(r) for r in valid + dead)
    assert len(positions) == CORPUS_SIZE and set(positions.values()) == {1}
    assert set(positions) == {(r.partition, r.offset) for r in raw}

    expected = oracle(settings, raw, now)
    partitions = len(end_offsets(settings, Topics(settings.topic_prefix).name("examples.valid")))
    reasons: Counter[str] = Counter()
    for record in valid:
        verdict = expected[source_of(record)]
        assert isinstance(verdict, LabelledExample), (source_of(record), verdict)
        assert record.value == encode(verdict)
        # every stream on its canonical partition, whatever the raw partition was
        assert record.partition == canonical_partition(verdict.stream.encode(), partitions)
        reasons["valid"] += 1
    for record in dead:
        letter = decode(record.value, DeadLetter)
        assert isinstance(letter, DeadLetter)
        verdict = expected[source_of(record)]
        assert isinstance(verdict, DeadLetter), (letter.reason, letter.detail)
        assert letter.reason is verdict.reason, (letter.detail, verdict.detail)
        assert letter.reason is not ReasonCode.HANDLER_ERROR, letter.detail
        assert letter.event_id == verdict.event_id and letter.original == verdict.original
        reasons[letter.reason.value] += 1
    print(dict(reasons))  # noqa: T201 - the corpus's coverage, for the record
    assert len(reasons) >= 14, reasons
    assert reasons["valid"] > CORPUS_SIZE // 5, reasons
