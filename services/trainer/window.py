"""The training window (pure): rows of one stream, de-duplicated, selected and split by time.

A row is one valid example at its Kafka position. Whatever the mode, the window is the
top ``count`` rows by ``(event_time, partition, offset)`` among the stream's rows in the
replayed offset ranges, so the recorded per-partition ranges and the row count are
enough to rebuild exactly the same window later (:func:`select`).

The valid topic is not trusted (any principal can write there): :func:`parse` skips a
record that breaks the event contract or the stream's spec (:class:`Skipped`, with the
reason a consumer's dead letter would give), before de-duplication, as the learner
refuses them before it remembers an id. A window holding such records still trains, on
the others. :func:`conforming` is the same spec check for rows read without it.

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
from uuid import UUID

from schemas import LabelledExample, ReasonCode
from schemas.lineage import Lineage, OffsetRange
from schemas.streams import Spec
from services.common.codec import decode
from services.common.conformance import nonconformance
from services.common.errors import CodecError

_NO_ID = UUID(int=0)  # conforming() builds examples to check, not to send


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


@dataclass(frozen=True)
class Skipped:
    """A record of the window that cannot be trained on, and why."""

    partition: int
    offset: int
    reason: ReasonCode
    detail: str


def parse(
    partition: int, offset: int, value: bytes | None, stream: str, spec: Spec | None = None
) -> Row | Skipped | None:
    """A valid-topic message as a row of ``stream``: None for another stream's, Skipped
    for one that breaks the event contract (it may be anyone's) or ``spec``.

    The whole event is validated, by the codec every consumer decodes with (pydantic's
    JSON parser is faster than ``json.loads`` and reading the fields by hand).

    >>> parse(0, 7, b'{"stream": "s", "example_id": "a", "features": {"x": 1},'
    ...       b' "label": true, "event_time": "2026-01-01T00:00:00Z"}', "s").offset
    7
    >>> parse(0, 7, b'{"stream": "other", "example_id": "a", "features": {},'
    ...       b' "label": true, "event_time": "2026-01-01T00:00:00Z"}', "s") is None
    True
    >>> parse(0, 8, b'{"stream": "s"}', "s").reason
    <ReasonCode.CONTRACT_VIOLATION: 'contract_violation'>
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
    ...                             "label": {"kind": "class", "classes": [0, 1]}})
    >>> parse(0, 9, b'{"stream": "s", "example_id": "a", "features": {"x": "1"},'
    ...       b' "label": 1, "event_time": "2026-01-01T00:00:00Z"}', "s", spec).detail
    "feature 'x' is a number, got '1'"
    """
    if not value:
        return Skipped(partition, offset, ReasonCode.UNPARSEABLE, "a record without a value")
    try:
        example = decode(value, LabelledExample)
    except CodecError as exc:
        return Skipped(partition, offset, exc.reason, exc.detail)
    assert isinstance(example, LabelledExample)  # noqa: S101 - decode's target
    if example.stream != stream:
        return None
    if spec is not None:
        problem = nonconformance(example, spec)
        if problem is not None:
            return Skipped(partition, offset, *problem)
    return Row(
        partition, offset, example.example_id, example.features, example.label, example.event_time
    )


def conforming(rows: Iterable[Row], spec: Spec) -> tuple[list[Row], list[Skipped]]:
    """The rows that fit ``spec``, and the others with the reason they do not (for rows
    read without the check; :func:`parse` makes it on the decoded event, faster).

    >>> from datetime import UTC, datetime
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number", "max": 9}],
    ...                             "label": {"kind": "class", "classes": [0, 1]}})
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> good, bad = conforming([Row(0, 0, "a", {"x": 1.0}, 1, t),
    ...                         Row(0, 1, "b", {"x": "1"}, 1, t),
    ...                         Row(0, 2, "c", {"x": 1e300}, 1, t),
    ...                         Row(0, 3, "d", {"x": 1.0}, 7, t)], spec)
    >>> [r.offset for r in good], [(s.offset, s.reason.value) for s in bad]
    ([0], [(1, 'wrong_type'), (2, 'out_of_range'), (3, 'bad_label')])
    """
    good: list[Row] = []
    bad: list[Skipped] = []
    for row in rows:
        # the check reads the features and the label only: no need to validate again
        example = LabelledExample.model_construct(
            event_id=_NO_ID,
            occurred_at=row.event_time,
            stream="",
            example_id=row.example_id,
            features=dict(row.features),
            label=row.label,
            event_time=row.event_time,
        )
        problem = nonconformance(example, spec)
        if problem is None:
            good.append(row)
        else:
            bad.append(Skipped(row.partition, row.offset, *problem))
    return good, bad


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

    ``last``: the last ``window``; ``since_drift``: every row at or after the drift, at
    most ``window`` (the newest); either way at least ``min_size``. Raises
    :class:`WindowTooSmall` when fewer than ``min_size`` rows exist.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> rows = [Row(0, i, str(i), {}, 0, t0 + timedelta(seconds=i)) for i in range(100)]
    >>> [window_size(rows, mode="since_drift", window=w, min_size=10,
    ...              drift_time=t0 + timedelta(seconds=70)) for w in (50, 20)]
    [30, 20]
    """
    if mode == "since_drift" and drift_time is not None:
        after = sum(1 for r in rows if r.event_time >= drift_time)
        wanted = min(after, window)
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
        if len(rows) >= max(window, min_size):
            return True  # a full window of the newest rows, all after the drift
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
