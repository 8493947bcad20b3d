"""Producing events to Kafka with delivery accounting. The edge: kafka-python via common."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import Event
from services.common.codec import encode, event_key

log = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What a :func:`send_all` call delivered."""

    sent: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Acknowledged events per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def send_all(
    producer: Any,
    topic: str,
    events: Iterable[Event],
    *,
    on_progress: Callable[[int], None] | None = None,
    flush_every: int = 10_000,
) -> SendReport:
    """Send every event (keyed by the topic rules), flush, and count acks and failures.

    A KeyboardInterrupt stops reading ``events`` but still flushes what was sent,
    then re-raises with the report attached as ``exc.report``.
    """
    report = SendReport()
    started = time.perf_counter()

    def ok(_metadata: Any) -> None:
        report.sent += 1

    def failed(exc: BaseException) -> None:
        report.failed += 1
        if len(report.errors) < 10:
            report.errors.append(str(exc))
        log.error("delivery failed", extra={"topic": topic, "error": str(exc)})

    pending = 0
    try:
        for event in events:
            future = producer.send(topic, key=event_key(event), value=encode(event))
            future.add_callback(ok)
            future.add_errback(failed)
            pending += 1
            if on_progress is not None:
                on_progress(1)
            if pending >= flush_every:
                producer.flush()
                pending = 0
    except KeyboardInterrupt as exc:
        producer.flush()
        report.elapsed_s = time.perf_counter() - started
        exc.report = report  # type: ignore[attr-defined]
        raise
    producer.flush()
    report.elapsed_s = time.perf_counter() - started
    return report
