"""Metric snapshots on the ``metrics`` topic."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.base import Event


class MetricSnapshot(Event):
    """Sent by the learner (prequential) and the evaluator (served model) per window."""

    event_type: Literal["metric_snapshot"] = "metric_snapshot"
    stream: str = Field(min_length=1)
    model: str
    version: int | None = Field(default=None, ge=1, description="None before any version")
    source: Literal["learner", "evaluator"]
    role: str = Field(default="online", description="online, champion or challenger")
    values: dict[str, float] = Field(description="metric name -> value; rolling_* and cumulative")
    window: int = Field(ge=1, description="rolling window size in examples")
    example_count: int = Field(ge=0)
    event_time: AwareDatetime | None = None
