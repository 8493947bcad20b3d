"""Shared pieces of the evaluator's integration tests: registering real models, running
the evaluator as a process, and reading topics back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from schemas import AliasReason, StreamConfig, Topics
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.processes import publish, service_env, start_service
from tests.keys import private_key_for
from tests.services.evaluator.data import config, tree

KEY = private_key_for("evaluator-test-signing-key")


def publish_raw(settings: DriftlineSettings, suffix: str, key: bytes, values: list[bytes]) -> None:
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def loans_stream(
    settings_factory: Callable[..., DriftlineSettings],
) -> tuple[DriftlineSettings, StreamConfig, Registry]:
    """Signing settings, the ``loans`` config published on ``streams``, an open registry."""
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    cfg = config("loans")
    publish(settings, "streams", [cfg])
    return settings, cfg, Registry.open(settings)


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
    return service_env(
        settings,
        KEY,
        DRIFTLINE_EVALUATOR_GROUP_ID=group,
        DRIFTLINE_EVALUATOR_METRICS_PORT="0",
        DRIFTLINE_EVALUATOR_SESSION_TIMEOUT_MS="6000",
        DRIFTLINE_EVALUATOR_CHECKPOINT_INTERVAL_S="1",
        **extra,
    )


def start_evaluator(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_service("evaluator", env, log)
