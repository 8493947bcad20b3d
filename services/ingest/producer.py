"""Producing events to Kafka with delivery accounting. The edge: kafka-python via common.

>>> import math
>>> from datetime import datetime, timezone
>>> from schemas import LabelledExample
>>> ex = LabelledExample(stream="s", example_id="1", features={"x": math.nan}, label=1,
...                      event_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> b'"x":NaN' in encode_raw(ex)
True
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import Event, LabelledExample
from services.common.codec import encode, event_key
from services.common.shutdown import GracefulShutdown

log = logging.getLogger(__name__)

# Producer settings for data we care about, on top of make_producer's acks=all and
# idempotence: bigger batches and a little linger, so a replay at full speed fills them.
PRODUCE_OVERRIDES: dict[str, Any] = {
    "linger_ms": 20,
    "batch_size": 512 * 1024,
    "client_id": "driftline-produce",
}


@dataclass
class SendReport:
    """What a :func:`send_all` call delivered, in all and by stream (the events' key)."""

    sent: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    sent_by_stream: Counter[str] = field(default_factory=Counter)
    failed_by_stream: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Acknowledged events per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def encode_raw(event: Event) -> bytes:
    """The JSON bytes of an event, keeping NaN and +-Infinity as JSON literals.

    The codec writes a non-finite float as ``null``, which would turn a bad value into a
    missing one; Python's ``json`` and Jackson write ``NaN`` and ``Infinity``, so the
    validator can name the problem (``non_finite``).
    """
    if not isinstance(event, LabelledExample) or not _non_finite(event):
        return encode(event)
    doc = event.model_dump(mode="json")
    return json.dumps(doc, separators=(",", ":"), allow_nan=True).encode()


def _non_finite(example: LabelledExample) -> bool:
    values = [*example.features.values(), example.label]
    return any(isinstance(v, float) and not math.isfinite(v) for v in values)


def send_all(
    producer: Any,
    topic: str,
    events: Iterable[Event],
    *,
    on_progress: Callable[[int], None] | None = None,
    flush_every: int = 10_000,
    rate: float | None = None,
    encoder: Callable[[Event], bytes] = encode,
) -> SendReport:
    """Send every event (keyed by the topic rules), flush, and count acks and failures.

    ``rate`` (events/s) paces the sending; ``encoder`` turns an event into bytes.
    Ctrl-C (SIGINT, in the main thread) stops reading ``events`` but still flushes what
    was sent, then raises KeyboardInterrupt with the report attached as ``exc.report``.
    """
    report = SendReport()
    started = time.perf_counter()

    def ok(stream: str) -> None:
        report.sent += 1
        report.sent_by_stream[stream] += 1

    def failed(stream: str, exc: BaseException) -> None:
        report.failed += 1
        report.failed_by_stream[stream] += 1
        if len(report.errors) < 10:
            report.errors.append(str(exc))
        log.error("delivery failed", extra={"topic": topic, "error": str(exc)})

    pending = 0
    count = 0
    # Ctrl-C only raises a flag, seen between two events: a KeyboardInterrupt raised inside
    # ``send`` (after the record was queued, before its callback was attached) would leave
    # a delivered event out of the report.
    interrupted = False
    with GracefulShutdown(signals=(signal.SIGINT,)) as stop:
        try:
            for event in events:
                if stop.requested:
                    break
                if rate:
                    delay = started + count / rate - time.perf_counter()
                    if delay > 0.001:
                        time.sleep(delay)
                key = event_key(event)
                stream = "" if key is None else key.decode(errors="replace")
                future = producer.send(topic, key=key, value=encoder(event))
                future.add_callback(lambda _metadata, s=stream: ok(s))
                future.add_errback(lambda exc, s=stream: failed(s, exc))
                pending += 1
                count += 1
                if on_progress is not None:
                    on_progress(1)
                if pending >= flush_every:
                    producer.flush()
                    pending = 0
        except KeyboardInterrupt:  # raised by the source itself (between two events)
            interrupted = True
    producer.flush()
    report.elapsed_s = time.perf_counter() - started
    if interrupted or stop.requested:
        interrupt = KeyboardInterrupt()
        interrupt.report = report  # type: ignore[attr-defined]
        raise interrupt
    return report
