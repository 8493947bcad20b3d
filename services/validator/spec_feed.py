"""The spec feed: the compacted ``streams`` topic followed into the validator's
:class:`~services.validator.specs.SpecRegistry`.

Before the validator starts, the topic is read to its end; then a thread follows it (no
consumer group: every validator sees every config) and the batch loop (or the faust
agent's timer) applies new versions between batches.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Final

from schemas import StreamConfig
from services.common.backoff import Backoff
from services.common.settings import DriftlineSettings
from services.common.stream_configs import StreamConfigs
from services.validator.specs import SpecRegistry

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 120.0


class SpecFeed:
    """Follows the compacted ``streams`` topic in a daemon thread, queueing every change
    for the event loop (the reading itself is :class:`StreamConfigs`')."""

    def __init__(self, settings: DriftlineSettings) -> None:
        self.updates: queue.SimpleQueue[StreamConfig | str] = queue.SimpleQueue()
        self._configs = StreamConfigs(settings, client_id="driftline-validator")
        self.topic = self._configs.topic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def catch_up(self, registry: SpecRegistry, timeout_s: float = READ_TIMEOUT_S) -> int:
        """Read the topic up to its current end into ``registry``; returns changes applied."""
        changes = self._configs.catch_up(timeout_s)
        for change in changes:
            apply_update(registry, change)
        return len(changes)

    def start(self) -> None:
        """Follow the topic in a daemon thread, queueing every new config."""
        self._thread = threading.Thread(target=self._follow, name="spec-feed", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                changes = self._configs.refresh(timeout_ms=500)
            except Exception as exc:  # keep following: a transient broker error must not stop it
                delay = backoff.failed()
                if backoff.should_log():
                    log.warning(
                        "reading %s failed (%d in a row), retrying with backoff: %s",
                        self.topic,
                        backoff.failures,
                        exc,
                        exc_info=backoff.failures == 1,
                    )
                self._stop.wait(delay)
                continue
            if backoff.failures:
                log.info("reading %s again after %d failures", self.topic, backoff.succeeded())
            for change in changes:
                self.updates.put(change)

    def close(self) -> None:
        """Stop following and close the client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._configs.close()


def apply_update(registry: SpecRegistry, update: StreamConfig | str | None) -> bool:
    """Put one change of the ``streams`` topic (a config, or a deleted stream's name)
    into force; returns whether the registry changed."""
    if update is None:
        return False
    if isinstance(update, str):
        removed = registry.remove(update)
        if removed:
            log.info("stream %s deleted from the streams topic", update)
        return removed
    changed = registry.apply(update)
    if changed:
        log.info("stream %s: spec v%s in force", update.stream, update.version)
    return changed
