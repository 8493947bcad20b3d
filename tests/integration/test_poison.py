"""No poison pills: records that break the spec, the contract or the JSON, written straight
to ``examples.valid``, ``drift``, ``models``, ``streams`` and ``predictions.requests`` while
every service runs. None dies, each record is a counted letter on ``events.dead``, the
good examples are all learned (and only they), serving keeps answering, and the compacted
topics end on their last valid value."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from schemas import (
    CATALOGUE,
    AliasMoved,
    AliasReason,
    DeadLetter,
    Prediction,
    PredictionRequest,
    StreamConfig,
    Topics,
)
from services.common.codec import decode, encode
from services.common.errors import CodecError
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.ingest.spec_publish import publish_config
from services.localbroker.ports import free_ports
from services.registry.client import Registry
from tests.integration.learner_support import config, examples, learned
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, publish, service_env, start_service
from tests.integration.registry_service import START_S, healthy
from tests.keys import private_key_for

KEY = private_key_for("poison-test-signing-key")
TOKEN = "poison-test-service-token"  # noqa: S105 - a test token
S = "agr"
GOOD = 300


def send(
    settings: DriftlineSettings, suffix: str, records: Sequence[tuple[bytes, bytes | None]]
) -> list[int]:
    """Write raw records; their offsets."""
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    futures = [producer.send(topic, key=k, value=v) for k, v in records]
    producer.flush()
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    return offsets


def last_value(settings: DriftlineSettings, suffix: str, key: bytes) -> bytes | None:
    reader = TopicReader(settings, suffix)
    try:
        reader.consumer.poll(timeout_ms=0)
        found: list[bytes | None] = []
        end = reader.consumer.end_offsets(reader.consumer.assignment())
        while any(reader.consumer.position(tp) < o for tp, o in end.items()):
            for records in reader.consumer.poll(timeout_ms=200).values():
                found += [r.value for r in records if r.key == key]
        return found[-1] if found else None
    finally:
        reader.close()


def test_poison_everywhere(
    settings_factory: Callable[..., DriftlineSettings],
    registry_database: str | None,
    tmp_path: Path,
) -> None:
    # its own registry service, on the database of this run's backend; the other
    # services reach it over HTTP with a service token
    settings = settings_factory(
        signing_key=KEY, signing_key_id="k1", registry_url=registry_database
    )
    cfg, _ = publish_config(settings, config(S, online_every=100))  # recorded by the registry
    port, registry_port = free_ports(2)
    api = f"http://127.0.0.1:{registry_port}"
    group = f"p-{uuid.uuid4().hex[:8]}"
    env = service_env(
        settings,
        KEY,
        DRIFTLINE_SERVICE_TOKEN=TOKEN,
        DRIFTLINE_REGISTRY_PORT=str(registry_port),
        DRIFTLINE_SERVING_PORT=str(port),
        DRIFTLINE_SERVING_SESSION_TIMEOUT_MS="6000",
        DRIFTLINE_SERVING_GROUP_ID=f"{group}-serving",
        DRIFTLINE_LEARNER_GROUP_ID=group,
        DRIFTLINE_LEARNER_METRICS_PORT="0",
        DRIFTLINE_LEARNER_SESSION_TIMEOUT_MS="6000",
        DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S="1",
        DRIFTLINE_LEARNER_CHECKPOINT_EVERY="100",
        DRIFTLINE_TRAINER_GROUP_ID=f"{group}-trainer",
        DRIFTLINE_TRAINER_METRICS_PORT="0",
        DRIFTLINE_TRAINER_SESSION_TIMEOUT_S="6",
        DRIFTLINE_EVALUATOR_GROUP_ID=f"{group}-evaluator",
        DRIFTLINE_EVALUATOR_METRICS_PORT="0",
        DRIFTLINE_EVALUATOR_SESSION_TIMEOUT_MS="6000",
        DRIFTLINE_VALIDATOR_METRICS_PORT="0",
    )
    log = tmp_path / "services.log"
    procs = [start_service("registry", env, log)]
    wait_for(lambda: healthy(api), START_S, "the registry", procs, log)
    over_http = env | {"DRIFTLINE_REGISTRY_URL": api}
    names = ("validator", "learner", "trainer", "evaluator", "serving")
    procs += [start_service(name, over_http, log) for name in names]
    registry = Registry.open(settings, relay=False)
    letters = TopicReader(settings, "events.dead")
    answers = TopicReader(settings, "predictions")
    try:
        good = examples(S, GOOD + 1, seed=1)
        valid = Topics(settings.topic_prefix).name("examples.valid")
        parts = CATALOGUE["examples.valid"].partitions

        def learned_all(n: int) -> Callable[[], bool]:
            return lambda: learned(registry, group, valid, parts) == {S: n}

        publish(settings, "examples.valid", good[:GOOD])  # online versions, a champion
        wait_for(learned_all(GOOD), 120, "the first examples learned", procs, log)

        bad_example = good[0].model_copy(update={"example_id": "bad", "label": 7})
        request = PredictionRequest(stream=S, example_id="q", features=dict(good[1].features))
        not_mine = AliasMoved(model=S, alias="challenger", to_version=1, reason=AliasReason.MANUAL)
        k = S.encode()
        poison = {
            "examples.valid": [
                (k, b"{not json"),
                (k, b'{"event_type": "labelled_example"}'),
                (k, encode(bad_example)),
            ],
            "drift": [(k, b"\xff\xfe"), (k, b'{"event_type": "drift_detected", "stream": 1}')],
            "models": [
                (f"{S}@champion".encode(), b"{not json"),
                (f"{S}@champion".encode(), encode(not_mine)),
            ],
            "streams": [
                (k, b"{not json"),
                (k, b'{"event_type": "stream_config", "stream": "agr"}'),
            ],
            "predictions.requests": [
                (k, b"[]"),
                (k, b'{"event_type": "prediction_request"}'),
                (k, encode(request.model_copy(update={"features": {"salary": "high"}}))),
            ],
        }
        sent = {suffix: send(settings, suffix, records) for suffix, records in poison.items()}
        publish(settings, "predictions.requests", [request])
        publish(settings, "examples.valid", good[GOOD:])  # a change: the learner checkpoints

        def lettered(service: str, suffix: str) -> Callable[[], bool]:
            topic = Topics(settings.topic_prefix).name(suffix)

            def check() -> bool:
                seen = {
                    e.source_offset
                    for e in letters.poll()
                    if isinstance(e, DeadLetter)
                    and e.service == service
                    and e.source_topic == topic
                }
                return set(sent[suffix]) <= seen

            return check

        expected = [
            ("evaluator", "examples.valid"),
            ("serving", "predictions.requests"),
            ("registry", "models"),
            ("registry", "streams"),
            ("learner", "examples.valid"),
            ("trainer", "drift"),
        ]
        for service, suffix in expected:
            wait_for(lettered(service, suffix), 60, f"{service}'s letters on {suffix}", procs, log)
        wait_for(
            lambda: any(isinstance(e, Prediction) and e.example_id == "q" for e in answers.poll()),
            60,
            "an answer after the bad requests",
            procs,
            log,
        )
        wait_for(learned_all(GOOD + 1), 60, "learned = valid", procs, log)

        # the compacted topics end on the current value under the keys that were poisoned
        def reasserted() -> bool:
            try:
                move = decode(last_value(settings, "models", f"{S}@champion".encode()), AliasMoved)
                config = decode(last_value(settings, "streams", k), StreamConfig)
            except CodecError:  # the poison is still the last value
                return False
            assert isinstance(move, AliasMoved) and isinstance(config, StreamConfig)
            champion = registry.get_alias(model=S, alias="champion")
            return move.to_version == champion and config.version == cfg.version

        wait_for(reasserted, 30, "the last valid values re-asserted", procs, log)
        for key in (f"models {S}@champion", f"streams {S}"):
            assert f"re-asserting the current value of {key}" in log.read_text()
        assert [p.poll() for p in procs] == [None] * len(procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        letters.close()
        answers.close()
        registry.close()
