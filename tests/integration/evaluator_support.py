"""Shared pieces of the evaluator's integration tests: registering real models, running
the evaluator as a process, and reading topics back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from schemas import CATALOGUE, AliasReason, Event, StreamConfig, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import assign_all, make_consumer, make_producer
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.services.evaluator.data import tree

KEY = "evaluator-test-signing-key"


def publish(settings: DriftlineSettings, suffix: str, events: list[Any]) -> None:
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    for event in events:
        producer.send(topic, key=event_key(event), value=encode(event))
    producer.flush()
    producer.close()


def publish_raw(settings: DriftlineSettings, suffix: str, key: bytes, values: list[bytes]) -> None:
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def register_tree(registry: Registry, cfg: StreamConfig, function: int) -> int:
    """Register a decision tree that learned Agrawal concept ``function``; its version."""
    version = registry.register_version(
        model=cfg.stream,
        kind="batch",
        predictor=tree(cfg, function),
        params={"concept": function},
        idempotency_key=f"test/{cfg.stream}/tree-{function}",
    )
    return version.version


def set_alias(registry: Registry, model: str, alias: str, version: int | None) -> None:
    registry.move_alias(
        model=model,
        alias=alias,
        to_version=version,
        expect=registry.get_alias(model=model, alias=alias),
        reason=AliasReason.MANUAL,
        actor="test",
    )


def evaluator_env(settings: DriftlineSettings, group: str, **extra: str) -> dict[str, str]:
    return os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_REGISTRY_URL": settings.registry_dsn,
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
        "DRIFTLINE_EVALUATOR_GROUP_ID": group,
        "DRIFTLINE_EVALUATOR_METRICS_PORT": "0",
        "DRIFTLINE_EVALUATOR_SESSION_TIMEOUT_MS": "6000",
        "DRIFTLINE_EVALUATOR_CHECKPOINT_INTERVAL_S": "1",
        "PYTHONPATH": str(Path.cwd()),
        **extra,
    }


def start_evaluator(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.evaluator"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


class TopicReader:
    """Reads a topic from its start, keeping every decoded event in order."""

    def __init__(self, settings: DriftlineSettings, suffix: str) -> None:
        self.spec = CATALOGUE[suffix]
        self.consumer = make_consumer(settings, group_id=None, client_id="test-reader")
        assign_all(self.consumer, Topics(settings.topic_prefix).name(suffix))
        self.events: list[Event] = []

    def poll(self) -> list[Event]:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.events += [decode(r.value, self.spec) for r in records]
        return self.events

    def close(self) -> None:
        self.consumer.close()
