"""Shadow pairs waiting for their labels, joined by ``(stream, example_id)``.

Pure and bounded: a pair waits at most ``window_s`` seconds (measured on the clock the
caller passes, the Kafka record timestamps in the evaluator, so a replay joins exactly
as the live run did) and at most ``max_pending`` pairs wait at once (the oldest is
dropped first). Dropped pairs are counted, never silently lost.

>>> from schemas import ModelAnswer, ShadowPair
>>> import uuid
>>> j = ShadowJoin(window_s=10, max_pending=2)
>>> def pair(i):
...     return ShadowPair(stream="s", example_id=str(i), request_event_id=uuid.uuid4(),
...         champion=ModelAnswer(model="s", version=1, prediction=1),
...         challenger=ModelAnswer(model="s", version=2, prediction=0))
>>> j.add(pair(1), now=0.0); j.add(pair(2), now=1.0); j.add(pair(3), now=2.0)
>>> j.evicted, len(j)
(1, 2)
>>> j.take("s", "2", now=5.0).example_id, j.joined
('2', 1)
>>> j.take("s", "3", now=13.0) is None, j.expired
(True, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from schemas import ShadowPair

__all__ = ["ShadowJoin"]


@dataclass
class ShadowJoin:
    """Pairs by (stream, example_id), oldest first, bounded in time and in count."""

    window_s: float
    max_pending: int
    pending: OrderedDict[tuple[str, str], tuple[float, ShadowPair]] = field(
        default_factory=OrderedDict
    )
    joined: int = 0
    expired: int = 0
    evicted: int = 0
    replaced: int = 0

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.max_pending < 1:
            raise ValueError("window_s must be > 0 and max_pending >= 1")

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, pair: ShadowPair, *, now: float) -> None:
        """Keep a pair until its label arrives (a newer pair for the same id replaces it)."""
        self.expire(now)
        key = (pair.stream, pair.example_id)
        if key in self.pending:
            self.replaced += 1
            del self.pending[key]
        self.pending[key] = (now, pair)
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.evicted += 1

    def take(self, stream: str, example_id: str, *, now: float) -> ShadowPair | None:
        """The pair waiting for this label, removed; None when there is none (any more)."""
        self.expire(now)
        found = self.pending.pop((stream, example_id), None)
        if found is None:
            return None
        self.joined += 1
        return found[1]

    def expire(self, now: float) -> int:
        """Drop pairs older than the window; returns how many."""
        dropped = 0
        while self.pending:
            key, (added, _) = next(iter(self.pending.items()))
            if now - added <= self.window_s:
                break
            del self.pending[key]
            dropped += 1
        self.expired += dropped
        return dropped
