"""The registry's availability as the learner sees it while learning goes on.

After a write fails because the registry is unreachable, no write is tried before a
backoff delay (1 s doubling to 30 s); every write put off is counted by what it was
(``learner_registry_deferred_total{what}``), and the outage is logged with a rate limit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.common.backoff import Backoff

log = logging.getLogger(__name__)


class RegistryOutage:
    """When the learner may write to the registry again."""

    def __init__(self, deferred: Any) -> None:
        self.deferred = deferred  # the counter of writes put off, labelled ``what``
        self.backoff = Backoff(first_s=1.0, max_s=30.0)
        self.retry_at = 0.0  # no registry write before this (monotonic)

    def ready(self) -> bool:
        """Whether a write may be tried now."""
        return time.monotonic() >= self.retry_at

    def put_off(self, what: str) -> None:
        """Count a ``what`` write not tried (the registry is down)."""
        self.deferred.labels(what=what).inc()

    def down(self, what: str, exc: Exception) -> None:
        """A ``what`` write failed: wait before the next one."""
        delay = self.backoff.failed()
        self.retry_at = time.monotonic() + delay
        self.put_off(what)
        if self.backoff.should_log():
            log.warning(
                "registry unreachable (%s put off, retried in %.1f s; learning goes on): %s",
                what,
                delay,
                exc,
            )

    def up(self) -> None:
        """A write went through."""
        if self.backoff.succeeded():
            log.info("the registry answers again: deferred writes are done")
