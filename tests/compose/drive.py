"""A drifting stream run through the containers from the host, as ``driftline demo`` runs
one through local processes: the demo's quick stream (Agrawal, abrupt drift), with a
malformed example every 250 and unreadable bytes now and then, prediction requests once
serving has a model, and the topics followed by the demo's own observer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

from schemas import LabelledExample, Topics
from schemas.predictions import PredictionRequest
from services.common.codec import encode
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.demo.observer import Observer
from services.demo.stream import DemoStream
from services.ingest.producer import encode_raw

RATE = 150.0  # examples/s, the demo's pace: the loop keeps up on 2 cores
BAD_EVERY = 250
GARBAGE_EVERY = BAD_EVERY * 8


def stream() -> DemoStream:
    """The demo's quick stream (9,000 examples, known drift points)."""
    return DemoStream.default(quick=True)


def write_config(source: DemoStream, directory: Path) -> Path:
    """The stream's config as a YAML file for ``driftline spec publish`` in a container."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    path = directory / f"{source.name}.yaml"
    dumped = source.config.model_dump(mode="json", exclude_none=False)
    data = {key: dumped[key] for key in ("stream", "spec", "model", "policy")}  # no envelope
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    path.chmod(0o644)
    return path


def produce(
    settings: DriftlineSettings,
    source: DemoStream,
    observer: Observer,
    alive: Callable[[], None],
    rate: float = RATE,
) -> int:
    """Replay ``source`` into ``examples.raw`` at ``rate``; returns how many were sent.
    ``alive()`` is called now and then and raises when the stack has failed."""
    topics = Topics(settings.topic_prefix)
    raw, requests = topics.name("examples.raw"), topics.name("predictions.requests")
    producer = make_producer(settings, client_id="driftline-compose-test", linger_ms=5)
    key = source.name.encode()
    started = time.monotonic()
    sent = 0
    try:
        for index, (example_id, features, label) in enumerate(source.identified()):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the replay, not waiting for a result
            if index % 500 == 0:
                alive()
            example = LabelledExample(
                stream=source.name,
                example_id=example_id,
                features=features,
                label=label,
                event_time=datetime.now(UTC),
            )
            with observer.locked() as state:
                state.expect(example_id, index)
                serving = bool(state.loads)
            if index % BAD_EVERY == BAD_EVERY - 1:
                producer.send(raw, key=key, value=malformed(example, index))
            else:
                if serving:  # the request first; its label follows
                    request = PredictionRequest(
                        stream=source.name, example_id=example_id, features=features
                    )
                    producer.send(requests, key=key, value=encode(request))
                producer.send(raw, key=key, value=encode_raw(example))
            if index % GARBAGE_EVERY == GARBAGE_EVERY // 2:
                producer.send(raw, key=key, value=b"\xff\xfe not an event")
                with observer.locked() as state:
                    state.garbage_sent += 1
            sent = index + 1
        producer.flush()
    finally:
        producer.close()
    return sent


def malformed(example: LabelledExample, index: int) -> bytes:
    """A broken copy of ``example`` that the validator must dead-letter, not lose.

    >>> ex = LabelledExample(stream="s", example_id="1", features={"a": 1.0}, label=True,
    ...                      event_time=datetime(2026, 1, 1, tzinfo=UTC))
    >>> sorted(json.loads(malformed(ex, 0))["features"])
    []
    """
    doc = example.model_dump(mode="json")
    kind = index // BAD_EVERY % 3
    if kind == 0 and doc["features"]:
        doc["features"].pop(sorted(doc["features"])[0])  # missing_feature
    elif kind == 1:
        doc["features"]["not_in_the_spec"] = 1.0  # unexpected_feature
    else:
        doc["label"] = "not-a-label"  # bad_label
    return json.dumps(doc).encode()
