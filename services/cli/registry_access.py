"""What the registry commands (``models``, ``runs``, ``gc``) share: the registry opened
from the settings (``DRIFTLINE_REGISTRY_URL``; no relay on open, reads need no broker),
the actor recorded with a manual move, the relay of a move's outbox event, and the
``driftline: error:`` exit."""

from __future__ import annotations

import getpass
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.registry.client import ModelInfo, Registry, is_remote


@contextmanager
def open_registry() -> Iterator[tuple[DriftlineSettings, Registry]]:
    """The settings and the registry (no relay on open: reads need no broker)."""
    settings = DriftlineSettings.load()
    registry = Registry.open(settings, relay=False)
    try:
        yield settings, registry
    finally:
        registry.close()


def error(message: str) -> int:
    """Say ``driftline: error: message`` on stderr; the exit code 1."""
    print(f"driftline: error: {message}", file=sys.stderr)
    return 1


def actor() -> str:
    """Who made a manual move: ``cli:<user>`` (``cli`` when the user is unknown)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def model_or_none(registry: Registry, name: str) -> ModelInfo | None:
    """The model, or None after saying that there is none."""
    info = registry.get_model(name=name)
    if info is None:
        error(f"no model {name!r} (see `driftline models list`)")
    return info


def publish_moves(settings: DriftlineSettings, registry: Registry) -> None:
    """Relay the outbox now; when Kafka cannot take it, say that the event is queued.
    A registry service relays its own outbox (woken by the move itself)."""
    if is_remote(settings.registry_url):
        return
    producer: Any = None
    problem: str | None = None
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL + 1)  # its retries are summed up below, once
    try:
        producer = make_producer(settings)
        registry.publish_outbox(producer)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the rows queued
        problem = str(exc) or type(exc).__name__
    finally:
        try:
            if producer is not None:
                producer.close()
        finally:
            kafka_log.setLevel(level)
    pending = registry.outbox_backlog()
    if problem is None and not pending:
        Console().print(f"published to {registry.topics.name('models')}")
        return
    print(
        "driftline: warning: the move is committed in the registry, but its event is queued: "
        f"{pending} event(s) wait in the outbox"
        + (f" because Kafka is unreachable ({problem})" if problem else "")
        + ". They are published when a registry process next relays "
        "(`driftline run registry` does so every few seconds).",
        file=sys.stderr,
    )
