"""Structured logging: text for people, JSON for machines (``DRIFTLINE_LOG_FORMAT``).

Anything that went wrong with a message is logged with its position::

    log.error("cannot decode", extra=at(topic, partition, offset, reason="unparseable"))

>>> at("driftline.examples.raw", 2, 1041, reason="oversize")
{'topic': 'driftline.examples.raw', 'partition': 2, 'offset': 1041, 'reason': 'oversize'}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.common import log_throttle

# Attributes of every LogRecord; anything else on a record came in through `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def at(topic: str, partition: int, offset: int, **fields: Any) -> dict[str, Any]:
    """``extra`` fields naming a message's topic, partition and offset."""
    return {"topic": topic, "partition": partition, "offset": offset, **fields}


class Throttle:
    """At most ``per_s`` lines a second through ``logger``; the rest are counted, and the
    next line let through says how many were held back.

    For what a flood of bad records would otherwise write once per record.

    >>> held = Throttle(logging.getLogger("demo"), per_s=2, clock=lambda: 0.0)
    >>> [held.warning("bad record %d", i) for i in range(4)], held.suppressed
    ([True, True, False, False], 2)
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_s: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_s = per_s
        self.clock = clock
        self.suppressed = 0
        self._window = -1.0
        self._used = 0

    def warning(self, msg: str, *args: Any, extra: dict[str, Any] | None = None) -> bool:
        """Log ``msg`` at WARNING unless this second's lines are spent; True when logged."""
        return self.log(logging.WARNING, msg, *args, extra=extra)

    def log(self, level: int, msg: str, *args: Any, extra: dict[str, Any] | None = None) -> bool:
        """Log ``msg`` at ``level`` unless this second's lines are spent; True when logged."""
        now = self.clock()
        if now - self._window >= 1.0:
            self._window, self._used = now, 0
        if self._used >= self.per_s:
            self.suppressed += 1
            return False
        self._used += 1
        if self.suppressed:
            msg += " (%d similar lines held back)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.log(level, msg, *args, extra=extra)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, service, message and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL service logger: message key=value ...``."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(service: str, *, fmt: str = "text", level: str = "INFO") -> None:
    """Send every log record to stderr in the chosen format (replaces earlier handlers).

    Repeated lines are rate-limited (:class:`~services.common.log_throttle.LogThrottle`):
    the Kafka client libraries' loggers at every level, ours from WARNING up, so that a
    broker outage logs a few lines a second and a count of what was suppressed.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    log_throttle.install(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        log_throttle.uninstall(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python and aiokafka log every connection attempt and retry they handle
    # themselves; our own code logs what matters, with topic, partition and offset.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.ERROR, root.level))
