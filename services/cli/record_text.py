"""Registry records as people and scripts read them: JSON with ISO times for ``--json``,
short text for table cells.

>>> from datetime import UTC, datetime
>>> when(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)), version_label(3), version_label(None)
('2026-01-02T03:04:05Z', 'v3', '-')
>>> text({"b": 1, "a": None})
'{"a": null, "b": 1}'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def print_json(doc: Any) -> None:
    """Print ``doc`` as one line of JSON (times in ISO 8601 with ``Z``)."""
    print(json.dumps(doc, default=json_value))


def json_value(value: Any) -> str:
    """A value JSON cannot hold, as text: a time in ISO 8601 with ``Z``, else ``str``."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def when(value: datetime | None) -> str:
    """A time to the second with ``Z``, or nothing."""
    return "" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def version_label(version: int | None) -> str:
    """``v3``, or ``-`` for no version."""
    return "-" if version is None else f"v{version}"


def text(value: Any) -> str:
    """A table cell: ``-`` for nothing, a time, a string, or sorted JSON."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)
