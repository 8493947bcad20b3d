"""The outbox relay: a thread publishing the registry's pending outbox rows to Kafka.

Every ``DRIFTLINE_REGISTRY_RELAY_INTERVAL_S``, at once after a move made through the API
(:meth:`OutboxRelay.kick`), and at start-up, so rows left by a crashed writer are
published. Kafka being unreachable does not stop the API: events wait in the outbox and
the relay keeps trying. Only ``driftline run registry`` runs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from services.common.metrics import Metrics
from services.registry.client import Registry
from services.registry.metrics import RelayMetrics

log = logging.getLogger("services.registry")


class OutboxRelay:
    """A daemon thread publishing pending outbox rows: every ``interval_s``, and at once
    when :meth:`kick` says a move was committed.

    A failure is logged once per outage (rows stay queued and are retried), and the
    recovery is logged too.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        producer_factory: Callable[[], Any],
        interval_s: float,
        metrics: Metrics,
    ) -> None:
        self.registry = registry
        self._producer_factory = producer_factory
        self._producer: Any = None
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        own = RelayMetrics(metrics)
        self._relayed, self._failures = own.relayed, own.failures

    def start(self) -> None:
        """Start relaying (the first attempt happens at once)."""
        self._thread.start()

    def kick(self) -> None:
        """Relay now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """Stop the thread; False when it is still stuck talking to Kafka after ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        done = not self._thread.is_alive()
        if done and self._producer is not None:
            self._producer.close()  # flushes
        return done

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    self._producer = self._producer_factory()
                sent = self.registry.publish_outbox(self._producer)
            except Exception as exc:  # noqa: BLE001 - rows stay queued; retried next round
                self._failures.inc()
                if not failing:
                    log.warning(
                        "outbox relay failed, events stay queued and are retried every %.1fs: %s",
                        self.interval_s,
                        exc,
                    )
                failing = True
            else:
                if sent:
                    self._relayed.inc(sent)
                    log.info("relayed %d outbox event(s) to Kafka", sent)
                if failing:
                    log.info("outbox relay recovered")
                failing = False
            self._wake.wait(self.interval_s)
            self._wake.clear()
