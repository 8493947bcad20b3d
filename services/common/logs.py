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
from datetime import UTC, datetime
from typing import Any

# Attributes of every LogRecord; anything else on a record came in through `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def at(topic: str, partition: int, offset: int, **fields: Any) -> dict[str, Any]:
    """``extra`` fields naming a message's topic, partition and offset."""
    return {"topic": topic, "partition": partition, "offset": offset, **fields}


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
    """Send every log record to stderr in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python and aiokafka log every connection attempt and retry they handle
    # themselves; our own code logs what matters, with topic, partition and offset.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.ERROR, root.level))
