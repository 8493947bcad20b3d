"""The training window (pure): rows of one stream, de-duplicated, selected and split by time.

A row is one valid example at its Kafka position. Whatever the mode, the window is the
top ``count`` rows by ``(event_time, partition, offset)`` among the stream's rows in the
replayed offset ranges, so the recorded per-partition ranges and the row count are
enough to rebuild exactly the same window later (:func:`select`).

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> rows = [Row(0, i, str(i), {"x": float(i)}, i % 2, t0 + timedelta(seconds=i))
...         for i in range(10)]
>>> rows.append(Row(1, 0, "3", {"x": 3.0}, 1, t0))  # a duplicate id: dropped
>>> window = select(dedupe(rows), count=6)
>>> [r.example_id for r in window]
['4', '5', '6', '7', '8', '9']
>>> train, holdout = split(window, holdout_fraction=0.34)
>>> len(train), len(holdout)
(3, 3)
>>> [(r.partition, r.start, r.end) for r in lineage(window, "valid").ranges]
[(0, 4, 10)]
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schemas.lineage import Lineage, OffsetRange


class WindowTooSmall(ValueError):
    """Fewer examples than the policy's minimum."""


@dataclass(frozen=True)
class Row:
    """One valid example of the stream at its Kafka position."""

    partition: int
    offset: int
    example_id: str
    features: Mapping[str, Any]
    label: Any
    event_time: datetime

    @property
    def key(self) -> tuple[datetime, int, int]:
        """The total order windows are cut by."""
        return (self.event_time, self.partition, self.offset)


def parse(partition: int, offset: int, value: bytes | None, stream: str) -> Row | None:
    """A valid-topic message as a row of ``stream`` (None: another stream or unreadable).

    The validator already checked every field, so this reads the JSON directly instead
    of validating the whole event again (replay decodes tens of thousands of them).

    >>> parse(0, 7, b'{"stream": "s", "example_id": "a", "features": {"x": 1},'
    ...       b' "label": true, "event_time": "2026-01-01T00:00:00Z"}', "s").offset
    7
    >>> parse(0, 7, b'{"stream": "other"}', "s") is None
    True
    """
    if not value:
        return None
    try:
        doc = json.loads(value)
        if doc.get("stream") != stream:
            return None
        when = datetime.fromisoformat(doc["event_time"])
        if when.tzinfo is None:
            return None
        return Row(partition, offset, str(doc["example_id"]), doc["features"], doc["label"], when)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def dedupe(rows: Iterable[Row]) -> list[Row]:
    """Keep the first delivery of each example id (lowest partition, then offset)."""
    seen: set[str] = set()
    out: list[Row] = []
    for row in sorted(rows, key=lambda r: (r.partition, r.offset)):
        if row.example_id not in seen:
            seen.add(row.example_id)
            out.append(row)
    return out


def select(rows: Sequence[Row], *, count: int) -> list[Row]:
    """The newest ``count`` rows by event time (ties by position), oldest first."""
    ordered = sorted(rows, key=lambda r: r.key)
    return ordered[max(0, len(ordered) - count) :]


def window_size(
    rows: Sequence[Row],
    *,
    mode: Literal["last", "since_drift"],
    window: int,
    min_size: int,
    drift_time: datetime | None,
) -> int:
    """How many of the newest ``rows`` the policy asks for.

    ``last``: the last ``window``; ``since_drift``: every row at or after the drift;
    either way at least ``min_size``. Raises :class:`WindowTooSmall` when fewer than
    ``min_size`` rows exist.
    """
    if mode == "since_drift" and drift_time is not None:
        wanted = sum(1 for r in rows if r.event_time >= drift_time)
    else:
        wanted = window
    if len(rows) < min_size:
        raise WindowTooSmall(f"{len(rows)} examples available, the policy needs {min_size}")
    return min(max(wanted, min_size), len(rows))


def enough(
    rows: Sequence[Row],
    exhausted: bool,
    *,
    mode: Literal["last", "since_drift"],
    window: int,
    min_size: int,
    drift_time: datetime | None,
) -> bool:
    """Whether a backwards replay has read far enough back (``exhausted``: nothing earlier).

    >>> enough([], True, mode="last", window=10, min_size=5, drift_time=None)
    True
    """
    if exhausted:
        return True
    if mode == "since_drift" and drift_time is not None:
        before = any(r.event_time < drift_time for r in rows)
        return before and len(rows) >= min_size
    return len(rows) >= max(window, min_size)


def split(rows: Sequence[Row], *, holdout_fraction: float) -> tuple[list[Row], list[Row]]:
    """Train on the older rows, hold out the most recent ``holdout_fraction`` (both non-empty)."""
    ordered = sorted(rows, key=lambda r: r.key)
    if len(ordered) < 2:
        raise WindowTooSmall(f"{len(ordered)} examples cannot be split into train and holdout")
    held = min(len(ordered) - 1, max(1, math.ceil(len(ordered) * holdout_fraction)))
    return ordered[:-held], ordered[-held:]


def lineage(rows: Sequence[Row], topic: str) -> Lineage:
    """Per-partition half-open offset ranges covering ``rows``, with their time range."""
    bounds: dict[int, tuple[int, int]] = {}
    for r in rows:
        lo, hi = bounds.get(r.partition, (r.offset, r.offset))
        bounds[r.partition] = (min(lo, r.offset), max(hi, r.offset))
    return Lineage(
        ranges=tuple(
            OffsetRange(topic=topic, partition=p, start=lo, end=hi + 1)
            for p, (lo, hi) in sorted(bounds.items())
        ),
        event_time_start=min((r.event_time for r in rows), default=None),
        event_time_end=max((r.event_time for r in rows), default=None),
        example_count=len(rows),
    )


def digest(rows: Sequence[Row]) -> str:
    """sha256 of the rows' positions, ids, features, labels and times, in window order."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r.key):
        doc = [r.partition, r.offset, r.example_id, r.features, r.label, r.event_time.isoformat()]
        h.update(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()
