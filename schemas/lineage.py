"""Lineage: the exact Kafka data a model learned from."""

from __future__ import annotations

from pydantic import AwareDatetime, Field, model_validator

from schemas.base import Record


class OffsetRange(Record):
    """A half-open offset range ``[start, end)`` of one topic-partition.

    >>> OffsetRange(topic="driftline.examples.valid", partition=0, start=10, end=20).count
    10
    """

    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    start: int = Field(ge=0, description="first offset included")
    end: int = Field(ge=0, description="first offset not included")

    @model_validator(mode="after")
    def _ordered(self) -> OffsetRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def count(self) -> int:
        """How many offsets the range spans."""
        return self.end - self.start


class Lineage(Record):
    """Where a model's training data came from: offset ranges and event-time range."""

    ranges: tuple[OffsetRange, ...] = ()
    event_time_start: AwareDatetime | None = None
    event_time_end: AwareDatetime | None = None
    example_count: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _time_ordered(self) -> Lineage:
        start, end = self.event_time_start, self.event_time_end
        if start is not None and end is not None and end < start:
            raise ValueError("event_time_end is before event_time_start")
        return self
