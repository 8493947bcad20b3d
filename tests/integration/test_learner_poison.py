"""No poison pills in the learner, on the real broker: records on ``examples.valid`` that
break the stream's spec or the event contract, mixed with good ones, are each a letter on
``events.dead`` with its reason; the learner does not die and learns exactly the good ones.
A bad record under the stream's key on ``streams`` does not take its config away."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

from schemas import LabelledExample, StreamConfig, Topics
from services.common.codec import encode
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.learner.ids import digest
from services.learner.state import PartitionState
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
from tests.integration.trainer_support import dead_letters


def _config() -> StreamConfig:
    """The Agrawal config, with a range on ``age`` (Agrawal's ages are 20 to 80)."""
    body = config("agr").model_dump(mode="json")
    for feature in body["spec"]["features"]:
        if feature["name"] == "age":
            feature["min"], feature["max"] = 0, 150
    return StreamConfig.model_validate(body)


def _raw(ex: LabelledExample, **change: object) -> bytes:
    """``ex`` changed as any producer may write it (NaN as the JSON literal)."""
    doc = ex.model_dump(mode="json") | {"features": dict(ex.features), "label": ex.label}
    for key, value in change.items():
        if key in doc:
            doc[key] = value
        else:
            doc["features"][key] = value
    return json.dumps(doc).encode()


def test_bad_records_are_letters_and_only_good_ones_are_learned(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    topics = Topics(settings.topic_prefix)
    valid = topics.name("examples.valid")
    good = examples("agr", 400, seed=3)
    spare = examples("agr", 420, seed=4)[400:]  # ids 400..419, for the bad ones
    bad: list[tuple[bytes, str]] = [
        (_raw(spare[0], label=5), "bad_label"),  # not one of the classes
        (_raw(spare[1], salary="95000"), "wrong_type"),  # a string for a number
        (_raw(spare[2], extra=1.0), "unexpected_feature"),
        (_raw(spare[3], age=1e300), "out_of_range"),  # the spec's max is 150
        (b"\x00\xffnot json at all", "unparseable"),
        (
            json.dumps({"stream": "agr", "example_id": "x", "label": 1}).encode(),
            "contract_violation",
        ),
        (_raw(spare[4], loan=float("nan")), "non_finite"),
        (_raw(spare[5], stream="nobody"), "unknown_stream"),
        (_raw(spare[6], label="1"), "bad_label"),  # the class is the number 1
    ]
    # every record keyed by the stream, so all are on one partition, in this order
    values: list[bytes] = [encode(ex) for ex in good]
    for i, (value, _) in enumerate(bad):
        values.insert(45 * i + 7, value)
    values.append(_raw(spare[7], label=9))  # the last record of all is bad too
    bad.append((values[-1], "bad_label"))

    producer = make_producer(settings)
    streams = topics.name("streams")
    producer.send(streams, key=b"agr", value=encode(_config()))
    producer.send(streams, key=b"agr", value=b"{ a config that is no config")
    # a newer "config" of agr under another key: it must not replace agr's
    spoof = _config().model_copy(update={"version": 5}).model_dump(mode="json")
    spoof["spec"]["label"]["classes"] = [7, 8]
    producer.send(streams, key=b"other", value=json.dumps(spoof).encode())
    for value in values:
        producer.send(valid, key=b"agr", value=value)
    producer.flush()
    producer.close()

    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(
        settings,
        group,
        DRIFTLINE_LEARNER_CHECKPOINT_EVERY="100",
        DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S="1",
    )
    log = tmp_path / "learner.log"
    registry = Registry.open(settings, relay=False)
    proc = start_learner(env, log)
    try:
        letters: list = []

        def all_lettered() -> bool:
            letters[:] = [d for d in dead_letters(settings) if d.service == "learner"]
            return len(letters) >= len(bad)

        wait_for(all_lettered, 120, "a letter for every bad record", proc, log)
        wait_for(
            lambda: (
                learned(registry, group, valid, 4).get("agr") == len(good)
                and any(
                    c.offsets.get(str(c.state.partition)) == len(values)
                    for c in _mine(registry, group, valid)
                )
            ),
            60,
            "the good records learned and the position past the last record",
            proc,
            log,
        )
        assert proc.poll() is None  # alive all along

        by_offset = {d.source_offset: d for d in letters}
        assert len(by_offset) == len(letters) == len(bad)  # one letter each, no more
        positions = [i for i, value in enumerate(values) if value in {v for v, _ in bad}]
        assert [by_offset[p].reason.value for p in positions] == [r for _, r in bad]
        assert all(by_offset[p].original == values[p] for p in positions)
        assert all(d.source_topic == valid for d in letters)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
        (cp,) = _mine(registry, group, valid)
        state = cp.state
        assert isinstance(state, PartitionState) and state.next_offset == len(values)
        track = state.streams["agr"]
        assert track.learner.examples_seen == len(good) == len(track.seen)
        assert set(track.seen) == {digest(ex.example_id) for ex in good}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        registry.close()


def _mine(registry: Registry, group: str, valid: str) -> list:
    return [c for c in checkpoints(registry, group, valid, 4) if "agr" in c.state.streams]
