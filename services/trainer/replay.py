"""Window replay from the valid topic through :mod:`services.common.kafka_client`.

Reads backwards from a fixed end (the offsets recorded when the run started) in growing
steps until the window is complete, and re-reads recorded lineage ranges exactly.

A record of the stream that breaks the event contract or the stream's spec is skipped
(:func:`services.trainer.window.parse`), counted by reason in :class:`ReplayStats` and
logged with its topic, partition and offset, a few lines a second at most.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas.lineage import OffsetRange
from schemas.streams import Spec
from services.common.kafka_client import offset_bounds, read_between
from services.common.logs import Throttle, at
from services.common.settings import DriftlineSettings
from services.trainer.window import Row, Skipped, parse

log = logging.getLogger(__name__)
_skips = Throttle(log, per_s=5)  # a window full of bad records: a few lines a second


@dataclass(frozen=True)
class Bounds:
    """First and next offsets of every partition of a topic."""

    begin: dict[int, int]
    end: dict[int, int]


@dataclass
class ReplayStats:
    """How much a replay read and how long it took."""

    records: int = 0
    rows: int = 0
    read_s: float = 0.0
    decode_s: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)
    """Records of the stream that could not be trained on, by reason code."""


def bounds(settings: DriftlineSettings, topic: str) -> Bounds:
    """The current first and next offsets of every partition of ``topic``."""
    return Bounds(*offset_bounds(settings, topic))


def read_rows(
    settings: DriftlineSettings,
    topic: str,
    stream: str,
    start: dict[int, int],
    end: dict[int, int],
    stats: ReplayStats | None = None,
    spec: Spec | None = None,
) -> list[Row]:
    """The rows of ``stream`` in ``[start[p], end[p])`` that keep the event contract and
    ``spec`` (raises DataExpired when gone)."""
    stats = stats if stats is not None else ReplayStats()
    key = stream.encode()
    rows: list[Row] = []
    t0 = time.perf_counter()
    decode_s = 0.0
    for record in read_between(settings, topic, start, end, timeout_s=120.0):
        stats.records += 1
        if record.key is not None and record.key != key:
            continue
        d0 = time.perf_counter()
        row = parse(record.partition, record.offset, record.value, stream, spec)
        decode_s += time.perf_counter() - d0
        if isinstance(row, Skipped):
            skipped(stats, topic, stream, row)
        elif row is not None:
            rows.append(row)
    stats.rows += len(rows)
    stats.decode_s += decode_s
    stats.read_s += time.perf_counter() - t0 - decode_s
    return rows


def skipped(stats: ReplayStats, topic: str, stream: str, skip: Skipped) -> None:
    """Count and log (rate-limited) a record the window leaves out."""
    stats.skipped[skip.reason.value] += 1
    _skips.warning(
        "%s: a record of the window cannot be trained on, skipped: %s",
        stream,
        skip.detail,
        extra=at(topic, skip.partition, skip.offset, reason=skip.reason.value),
    )


def read_back(
    settings: DriftlineSettings,
    topic: str,
    stream: str,
    limits: Bounds,
    *,
    first_step: int,
    enough: Callable[[Sequence[Row], bool], bool],
    stats: ReplayStats | None = None,
    spec: Spec | None = None,
) -> list[Row]:
    """Read backwards from ``limits.end`` in doubling steps until ``enough(rows, exhausted)``."""
    lo = dict(limits.end)
    rows: list[Row] = []
    step = max(1, first_step)
    while True:
        new_lo = {p: max(limits.begin.get(p, 0), lo[p] - step) for p in lo}
        rows = read_rows(settings, topic, stream, new_lo, lo, stats, spec) + rows
        lo = new_lo
        exhausted = all(lo[p] <= limits.begin.get(p, 0) for p in lo)
        if enough(rows, exhausted):
            return rows
        step *= 2


def read_ranges(
    settings: DriftlineSettings,
    stream: str,
    ranges: Sequence[OffsetRange],
    stats: ReplayStats | None = None,
    spec: Spec | None = None,
) -> list[Row]:
    """The rows of ``stream`` in recorded lineage ranges (DataExpired when gone)."""
    rows: list[Row] = []
    for topic in sorted({r.topic for r in ranges}):
        mine = [r for r in ranges if r.topic == topic]
        rows += read_rows(
            settings,
            topic,
            stream,
            {r.partition: r.start for r in mine},
            {r.partition: r.end for r in mine},
            stats,
            spec,
        )
    return rows


class KafkaReplay:
    """Windows from the valid topic of ``settings`` (the trainer's :class:`Replay`)."""

    def __init__(self, settings: DriftlineSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic

    def bounds(self) -> Bounds:
        """First and next offsets per partition of the valid topic."""
        return bounds(self.settings, self.topic)

    def read_back(
        self,
        stream: str,
        limits: Bounds,
        *,
        first_step: int,
        enough: Callable[[Sequence[Row], bool], bool],
        stats: ReplayStats,
        spec: Spec | None = None,
    ) -> list[Row]:
        """Rows of ``stream`` (fitting ``spec``) read backwards from ``limits.end`` until
        ``enough``."""
        return read_back(
            self.settings,
            self.topic,
            stream,
            limits,
            first_step=first_step,
            enough=enough,
            stats=stats,
            spec=spec,
        )
