"""Exponential backoff for our own retry loops, and when to log a failed attempt.

A loop that retries a broker call waits ``first_s``, then twice as long each time up to
``max_s`` (with up to 20 % jitter, so replicas do not retry in step), and logs the first
failure, then only every ``log_every``-th, saying how many came in between; a success
starts over (and says how many attempts failed before it).

>>> backoff = Backoff(first_s=1.0, max_s=4.0, jitter=0.0)
>>> [backoff.failed() for _ in range(4)]
[1.0, 2.0, 4.0, 4.0]
>>> backoff.failures, backoff.succeeded(), backoff.failures
(4, 4, 0)
>>> backoff = Backoff(log_every=3)
>>> [(backoff.failed(), backoff.should_log())[1] for _ in range(7)]
[True, False, False, True, False, False, True]
"""

from __future__ import annotations

import random


class Backoff:
    """The delays of one retry loop (not thread-safe: one per loop)."""

    def __init__(
        self, *, first_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.2, log_every: int = 10
    ) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self.log_every = log_every
        self.failures = 0

    def failed(self) -> float:
        """Count a failed attempt; returns how long to wait before the next one."""
        delay = min(self.max_s, self.first_s * 2.0 ** min(self.failures, 30))
        self.failures += 1
        return delay * (1.0 - self.jitter * random.random())  # noqa: S311 - not crypto

    def should_log(self) -> bool:
        """Whether the failure just counted is one to log (the first, then every Nth)."""
        return (self.failures - 1) % self.log_every == 0

    def succeeded(self) -> int:
        """Start over; returns how many attempts had failed in a row."""
        failures, self.failures = self.failures, 0
        return failures
