"""Where a kafka-python edge puts a record it cannot use: ``events.dead``, never the floor.

One door for the learner, the evaluator and serving, so every service counts, logs and
publishes an unusable record the same way: the counter by reason code, an error log that
names the record's topic, partition and offset, and a :class:`~schemas.DeadLetter` keyed by
the source topic (the topic table's key for ``events.dead``) whose id is derived from the
source position, so a redelivered record gives the same letter.

>>> from types import SimpleNamespace
>>> from schemas.dead_letter import ReasonCode
>>> sent = []
>>> producer = SimpleNamespace(send=lambda topic, key, value: sent.append((topic, key)))
>>> counts = {}
>>> counter = SimpleNamespace(labels=lambda reason: SimpleNamespace(
...     inc=lambda: counts.update({reason: counts.get(reason, 0) + 1})))
>>> letters = DeadLetters(producer, "p.events.dead", service="learner", counter=counter)
>>> record = SimpleNamespace(topic="p.examples.valid", partition=0, offset=7, key=b"s",
...                          value=b"{not json")
>>> letter = letters.send(record, ReasonCode.UNPARSEABLE, "Expecting value")
>>> sent, counts, letter.source_offset
([('p.events.dead', b'p.examples.valid')], {'unparseable': 1}, 7)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from schemas.dead_letter import DeadLetter, ReasonCode
from services.common.codec import dead_letter, encode
from services.common.logs import at

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)


class _Producer(Protocol):
    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...) -> Any: ...


class DeadLetters:
    """Counts, logs and publishes unusable records of one service.

    Parameters
    ----------
    producer
        Anything with kafka-python's ``send(topic, key=..., value=...)``.
    topic
        The full name of ``events.dead``.
    service
        Named in every letter.
    counter
        A Prometheus counter with a ``reason`` label.
    """

    def __init__(self, producer: _Producer, topic: str, *, service: str, counter: Any) -> None:
        self.producer = producer
        self.topic = topic
        self.service = service
        self.counter = counter

    def send(
        self,
        record: Any,
        reason: ReasonCode,
        detail: str,
        *,
        what: str = "unusable record",
        stream: str | None = None,
        example_id: str | None = None,
        source_event_id: str | None = None,
    ) -> DeadLetter:
        """Dead-letter ``record`` (a consumer record: topic, partition, offset, key, value)."""
        self.counter.labels(reason=reason.value).inc()
        log.error(
            "%s: %s",
            what,
            detail,
            extra=at(record.topic, record.partition, record.offset, reason=reason.value),
        )
        letter = dead_letter(
            reason=reason,
            detail=detail,
            service=self.service,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",  # b"": a tombstone
            stream=stream,
            example_id=example_id,
            source_event_id=source_event_id,
        )
        self.producer.send(self.topic, key=record.topic.encode(), value=encode(letter))
        return letter
