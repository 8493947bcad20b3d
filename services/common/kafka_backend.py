"""Which Kafka client the hot paths use: ``DRIFTLINE_KAFKA_CLIENT`` picks the backend.

The producer CLI, the validator, the learner, the evaluator and serving's Kafka path ask
here for their consumer and producer; everything else (admin, topic checks, the plain
reads of :mod:`services.common.kafka_client`) stays on kafka-python.

>>> from services.common.settings import DriftlineSettings
>>> backend(DriftlineSettings.load(env={})).name
'kafka-python'
"""

from __future__ import annotations

import sys
from typing import Any

from services.common.kafka_client import KafkaPythonBackend
from services.common.kafka_types import Backend, Consumer, Producer
from services.common.settings import DriftlineSettings


def backend(settings: DriftlineSettings) -> Backend:
    """The backend ``settings.kafka_client`` names (confluent-kafka imported only then)."""
    if settings.kafka_client == "confluent":
        from services.common.kafka_confluent import ConfluentBackend

        return ConfluentBackend()
    return KafkaPythonBackend()


def open_consumer(
    settings: DriftlineSettings, *topics: str, group_id: str | None, **options: Any
) -> Consumer:
    """A consumer of the configured backend (never auto-committing; fetch settings from
    ``settings``; ``options`` in kafka-python's names)."""
    return backend(settings).consumer(settings, *topics, group_id=group_id, **options)


def open_producer(settings: DriftlineSettings, **options: Any) -> Producer:
    """A producer of the configured backend: acks=all, idempotent, batched."""
    return backend(settings).producer(settings, **options)


def is_fenced(exc: BaseException) -> bool:
    """True when ``exc``, from either backend, says another consumer took this one's
    ``group_instance_id``."""
    if KafkaPythonBackend().is_fenced(exc):
        return True
    if "confluent_kafka" not in sys.modules:  # never raised by a client not loaded
        return False
    from services.common.kafka_confluent import ConfluentBackend

    return ConfluentBackend().is_fenced(exc)
