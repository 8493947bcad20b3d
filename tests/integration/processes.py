"""Service processes and events for integration tests: one place to start a service, build
its environment and publish events, shared by the per-service support modules."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from schemas import CATALOGUE, Event, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import assign_all, make_consumer, make_producer
from services.common.settings import DriftlineSettings


def service_env(settings: DriftlineSettings, key: str, **extra: str) -> dict[str, str]:
    """A service's environment on the test's broker, prefix, data dir and registry, signing
    with ``key`` (id ``k1``); ``extra`` adds or overrides variables."""
    return os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_REGISTRY_URL": settings.registry_dsn,
        "DRIFTLINE_SIGNING_KEY": key,
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
        "PYTHONPATH": str(Path.cwd()),
        **(
            {"DRIFTLINE_SERVICE_TOKEN": settings.service_token.get_secret_value()}
            if settings.service_token is not None
            else {}
        ),
        **extra,
    }


def start_service(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m services.<name>`` with its stderr (the JSON log) appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def publish(settings: DriftlineSettings, suffix: str, events: Iterable[Any]) -> None:
    """Send ``events`` to the topic ``suffix`` (keyed by the topic table) and flush."""
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    for event in events:
        producer.send(topic, key=event_key(event), value=encode(event))
    producer.flush()
    producer.close()


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
