"""One time budget for the whole compose test: every wait and subprocess takes its share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class OutOfTime(RuntimeError):
    """The compose test's budget ran out."""


@dataclass
class Deadline:
    """Seconds left of a budget that started when this object was made.

    >>> d = Deadline(60.0)
    >>> 0 < d.left() <= 60.0, d.cap(10.0) <= 10.0
    (True, True)
    """

    budget_s: float
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.started + self.budget_s - time.monotonic())

    def cap(self, timeout_s: float) -> float:
        """``timeout_s``, or less when the budget ends sooner; raises when it has ended."""
        left = self.left()
        if left <= 0:
            raise OutOfTime(f"the compose test's budget of {self.budget_s:.0f} s is spent")
        return min(timeout_s, left)

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.started
