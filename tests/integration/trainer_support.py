"""Shared pieces of the trainer's integration tests: data, processes, the models topic."""

from __future__ import annotations

import itertools
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from river import compose, linear_model, preprocessing
from river.datasets import synth

from schemas import (
    CATALOGUE,
    AliasMoved,
    AliasReason,
    DeadLetter,
    LabelledExample,
    Lineage,
    StreamConfig,
    Topics,
)
from schemas.drift import DriftDetected
from services.common.codec import decode
from services.common.kafka_client import assign_all, caught_up, make_consumer, make_producer
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.processes import service_env, start_service
from tests.keys import private_key_for
from tests.streams import AGRAWAL_NUMBERS, agrawal_stream, segment_features

KEY = private_key_for("trainer-it-signing-key-0123456")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NUMBERS = AGRAWAL_NUMBERS


def config(stream: str, **policy: Any) -> StreamConfig:
    """A published config of an Agrawal stream with a category segment ``group``."""
    return agrawal_stream(
        stream,
        version=1,
        segmented=True,
        policy={
            "segment_feature": "group",
            "max_gap": 1.0,
            "retrain": {
                "window": 2000,
                "min_size": 500,
                "budget_s": 2,
                "candidates": ["logistic_regression", "hist_gradient_boosting"],
            },
            **policy,
        },
    )


def examples(stream: str, n: int, *, before: int) -> list[LabelledExample]:
    """``before`` examples of Agrawal function 0, then an abrupt switch to function 2."""
    old = itertools.islice(synth.Agrawal(classification_function=0, seed=5), before)
    new = itertools.islice(synth.Agrawal(classification_function=2, seed=6), n - before)
    out = []
    for i, (x, y) in enumerate(itertools.chain(old, new)):
        features = segment_features(x)
        out.append(
            LabelledExample(
                stream=stream,
                example_id=str(i),
                features=features,
                label=int(y),
                event_time=T0 + timedelta(seconds=i),
                spec_version=1,
            )
        )
    return out


def publish_raw(settings: DriftlineSettings, suffix: str, key: bytes, value: bytes) -> None:
    producer = make_producer(settings)
    producer.send(Topics(settings.topic_prefix).name(suffix), key=key, value=value)
    producer.flush()
    producer.close()


def online_champion(registry: Registry, cfg: StreamConfig, data: list[LabelledExample]) -> int:
    """An online River version trained on ``data``, made champion as the learner would."""
    model = compose.Pipeline(
        compose.Select(*NUMBERS), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for ex in data:
        model.learn_one(dict(ex.features), ex.label)
    version = registry.register_version(
        model=cfg.stream,
        kind="online",
        predictor=Predictor.river(model, spec=cfg.spec, spec_sha256=cfg.spec_sha256()),
        lineage=Lineage(
            event_time_start=data[0].event_time,
            event_time_end=data[-1].event_time,
            example_count=len(data),
        ),
    )
    registry.move_alias(
        model=cfg.stream,
        alias="champion",
        to_version=version.version,
        expect=None,
        reason=AliasReason.COLD_START,
        actor="learner",
    )
    return version.version


def drift(stream: str, at: LabelledExample, count: int, version: int | None) -> DriftDetected:
    return DriftDetected(
        stream=stream,
        kind="concept",
        detector="ADWIN",
        topic="examples.valid",
        partition=0,
        offset=count,
        event_time=at.event_time,
        example_count=count,
        model_version=version,
    )


def trainer_env(settings: DriftlineSettings, group: str, **extra: str) -> dict[str, str]:
    return service_env(
        settings,
        KEY,
        DRIFTLINE_TRAINER_GROUP_ID=group,
        DRIFTLINE_TRAINER_METRICS_PORT="0",
        DRIFTLINE_TRAINER_SESSION_TIMEOUT_S="6",
        DRIFTLINE_TRAINER_WORKERS="2",
        **extra,
    )


def start_trainer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_service("trainer", env, log)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM and wait; the exit status."""
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout=30)


class ModelsTopic:
    """Follows the ``models`` topic from its beginning."""

    def __init__(self, settings: DriftlineSettings) -> None:
        self.consumer = make_consumer(settings, group_id=None)
        self.tps = assign_all(self.consumer, Topics(settings.topic_prefix).name("models"))
        self.events: list[Any] = []

    def poll(self) -> list[AliasMoved]:
        """Read what arrived; every alias move by the trainer so far."""
        for records in self.consumer.poll(timeout_ms=200).values():
            self.events += [decode(r.value, CATALOGUE["models"]) for r in records if r.value]
        return [e for e in self.events if isinstance(e, AliasMoved) and e.actor == "trainer"]

    def read_to_end(self) -> list[AliasMoved]:
        deadline = time.monotonic() + 60
        moves = self.poll()
        while not caught_up(self.consumer, self.tps) and time.monotonic() < deadline:
            moves = self.poll()
        return moves

    def close(self) -> None:
        self.consumer.close()


def dead_letters(settings: DriftlineSettings) -> list[DeadLetter]:
    """Every letter on ``events.dead`` so far."""
    consumer = make_consumer(settings, group_id=None)
    try:
        tps = assign_all(consumer, Topics(settings.topic_prefix).name("events.dead"))
        out: list[DeadLetter] = []
        deadline = time.monotonic() + 60
        while not caught_up(consumer, tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                out += [decode(r.value, DeadLetter) for r in records if r.value]  # type: ignore[misc]
        return out
    finally:
        consumer.close()
