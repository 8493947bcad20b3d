"""A rate limit on repeated log lines, so that a broker outage is a few lines a second.

While the broker is down, the Kafka clients log every connection attempt, metadata
refresh and failed fetch they retry by themselves (hundreds of lines a second across a
service's clients), and a retry loop of ours logs each failed attempt. :class:`LogThrottle`
sits on the service's log handler and lets through, per logger and message template, a
burst and then about one line a second; the client libraries' loggers also share one
budget for the whole service. What it drops is counted, and one line says so at most every
``summary_s`` seconds::

    WARNING ... services.common.log_throttle: 1131 similar lines suppressed in the last
    10.0 s (aiokafka 'Unable connect to node with id %s: %s' x549, ...)

Records below WARNING from our own loggers and every CRITICAL record always pass.

>>> throttle = LogThrottle(burst=2, per_second=0.0, library_burst=100, summary_s=3600)
>>> rec = lambda name, msg: logging.makeLogRecord(
...     {"name": name, "msg": msg, "levelno": logging.ERROR, "levelname": "ERROR"})
>>> [throttle.filter(rec("kafka.conn", "refused %s")) for _ in range(4)]
[True, True, False, False]
>>> throttle.filter(rec("kafka.conn", "another template")), throttle.suppressed()
(True, 2)
>>> throttle.filter(rec("services.app", "ok"))
True
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LIBRARY_LOGGERS", "LogThrottle", "install", "uninstall"]

# The client libraries whose loggers retry (and narrate) by themselves: every level counts.
LIBRARY_LOGGERS: Final = ("kafka", "aiokafka", "faust", "mode", "confluent_kafka")
_MAX_KEYS: Final = 2000
_SUMMARY_FLAG: Final = "_driftline_throttle_summary"

log = logging.getLogger(__name__)


@dataclass
class _Bucket:
    """A token bucket: ``capacity`` tokens, refilled at ``rate`` a second."""

    capacity: float
    rate: float
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class LogThrottle(logging.Filter):
    """A logging filter that rate-limits repeated lines and reports what it dropped.

    Parameters
    ----------
    burst, per_second
        Each (logger, message template) key: ``burst`` lines at once, then
        ``per_second`` lines a second.
    library_burst, library_per_second
        All records of :data:`LIBRARY_LOGGERS` together, on top of their own keys.
    summary_s
        At most one summary line per this many seconds, sent through ``handler`` (the
        handler the filter sits on) by a timer, so it comes even when the noise stops.
    """

    def __init__(
        self,
        *,
        burst: int = 5,
        per_second: float = 1.0,
        library_burst: int = 20,
        library_per_second: float = 2.0,
        summary_s: float = 10.0,
        handler: logging.Handler | None = None,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.per_second = per_second
        self.summary_s = summary_s
        self.handler = handler
        self._library = _Bucket(library_burst, library_per_second)
        self._keys: dict[tuple[str, str], _Bucket] = {}
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._since = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is logged (a dropped record is counted instead)."""
        if record.levelno >= logging.CRITICAL or getattr(record, _SUMMARY_FLAG, False):
            return True
        library = record.name.split(".", 1)[0] in LIBRARY_LOGGERS
        if not library and record.levelno < logging.WARNING:
            return True
        key = (
            record.name,
            record.msg if isinstance(record.msg, str) else type(record.msg).__name__,
        )
        now = time.monotonic()
        with self._lock:
            bucket = self._keys.get(key)
            if bucket is None:
                if len(self._keys) >= _MAX_KEYS:
                    self._keys.clear()
                bucket = self._keys[key] = _Bucket(self.burst, self.per_second, stamp=now)
            # a key's own budget first, so one template cannot starve the others
            if bucket.take(now) and (not library or self._library.take(now)):
                return True
            if not self._dropped:
                self._since = now
                self._schedule()
            self._dropped[key] += 1
        return False

    def suppressed(self) -> int:
        """Lines dropped since the last summary."""
        with self._lock:
            return sum(self._dropped.values())

    def flush(self) -> None:
        """Log the summary of what was dropped now (nothing when nothing was)."""
        with self._lock:
            dropped, self._dropped = self._dropped, Counter()
            elapsed = time.monotonic() - self._since
            self._timer = None
        if not dropped:
            return
        top = ", ".join(f"{name} {msg[:60]!r} x{n}" for (name, msg), n in dropped.most_common(3))
        more = len(dropped) - 3
        record = log.makeRecord(
            log.name,
            logging.WARNING,
            __file__,
            0,
            "%d similar lines suppressed in the last %.1f s (%s%s)",
            (sum(dropped.values()), elapsed, top, f", +{more} more" if more > 0 else ""),
            None,
        )
        setattr(record, _SUMMARY_FLAG, True)
        if self.handler is not None:
            self.handler.handle(record)
        else:
            log.handle(record)

    def _schedule(self) -> None:
        if self._timer is None and self.summary_s > 0:
            self._timer = threading.Timer(self.summary_s, self.flush)
            self._timer.daemon = True
            self._timer.name = "log-throttle-summary"
            self._timer.start()

    def close(self) -> None:
        """Stop the timer and log what is pending (at exit)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()


def install(handler: logging.Handler) -> LogThrottle:
    """Put a :class:`LogThrottle` on ``handler`` (summaries go through it; flushed at exit)."""
    throttle = LogThrottle(handler=handler)
    handler.addFilter(throttle)
    atexit.register(throttle.close)
    return throttle


def uninstall(handler: logging.Handler) -> None:
    """Take the throttles off ``handler``, logging what they have pending."""
    for found in [f for f in handler.filters if isinstance(f, LogThrottle)]:
        handler.removeFilter(found)
        atexit.unregister(found.close)
        found.close()
