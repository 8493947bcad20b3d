"""Follow the demo's topics in a background thread and fold them into a DemoState."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from schemas import Topics
from services.common.codec import decode
from services.common.errors import CodecError
from services.common.kafka_client import assign_all, make_consumer
from services.common.settings import DriftlineSettings
from services.demo.state import DemoState

log = logging.getLogger(__name__)

WATCHED = (
    "examples.valid",
    "examples.dead",
    "drift",
    "models",
    "models.acks",
    "predictions",
    "metrics",
)


class Observer:
    """Reads every watched topic from its start; ``locked()`` gives consistent reads."""

    def __init__(self, settings: DriftlineSettings, state: DemoState) -> None:
        self.settings = settings
        self.state = state
        self.topics = Topics(settings.topic_prefix)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-observer", daemon=True)
        self.error: BaseException | None = None
        self.undecodable = 0

    def start(self) -> Observer:
        """Start following the topics."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=15)

    @contextmanager
    def locked(self) -> Iterator[DemoState]:
        """The state, with the observer paused while the caller reads it."""
        with self._lock:
            yield self.state

    def wait_for(
        self, predicate: Callable[[DemoState], bool], timeout_s: float, poll_s: float = 0.2
    ) -> bool:
        """Poll ``predicate(state)`` until it holds or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.locked() as state:
                if predicate(state):
                    return True
            if self.error is not None or time.monotonic() >= deadline:
                return False
            self._stop.wait(poll_s)

    def _run(self) -> None:
        try:
            consumer = make_consumer(
                self.settings, group_id=None, client_id="driftline-demo-observer"
            )
        except BaseException as exc:  # reported to the main thread
            self.error = exc
            return
        try:
            specs = {self.topics.name(t): self.topics.spec_of(self.topics.name(t)) for t in WATCHED}
            assign_all(consumer, list(specs))
            while not self._stop.is_set():
                batch: dict[Any, list[Any]] = consumer.poll(timeout_ms=200, max_records=2000)
                if not batch:
                    continue
                with self._lock:
                    for tp, records in batch.items():
                        spec = specs[tp.topic]
                        for record in records:
                            self._apply(spec, record)
        except BaseException as exc:
            self.error = exc
            log.exception("the demo's observer stopped")
        finally:
            consumer.close()

    def _apply(self, spec: Any, record: Any) -> None:
        try:
            event = decode(record.value, spec)
        except CodecError as exc:
            self.undecodable += 1
            log.warning(
                "undecodable record: %s",
                exc,
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                },
            )
            return
        self.state.apply(event, at_ms=getattr(record, "timestamp", None))
