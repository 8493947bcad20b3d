"""Events on the ``drift`` topic: detected drift and manual retrain requests."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schemas.base import Event


class DriftDetected(Event):
    """Sent by the learner when a detector fires (after the policy's cooldown)."""

    event_type: Literal["drift_detected"] = "drift_detected"
    stream: str = Field(min_length=1)
    kind: Literal["concept", "data"]
    detector: str = Field(description="detector class, e.g. ADWIN")
    feature: str | None = Field(default=None, description="the drifting feature (data drift)")
    topic: str = Field(description="topic of the example where it fired")
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    event_time: AwareDatetime
    example_count: int = Field(ge=0, description="examples seen by the learner for the stream")
    model_version: int | None = Field(default=None, description="the online version live then")
    statistics: dict[str, float] = Field(default_factory=dict)


class RetrainRequested(Event):
    """Sent by ``driftline retrain`` (manual) or by the learner when ``policy.retrain.every``
    examples have passed (scheduled): a trigger that follows the drift path."""

    event_type: Literal["retrain_requested"] = "retrain_requested"
    stream: str = Field(min_length=1)
    window: int | None = Field(default=None, ge=1, description="examples to train on")
    requested_by: str = Field(default="cli", description="cli, learner, ...")
    reason: str = Field(default="manual")


DriftEvent = Annotated[DriftDetected | RetrainRequested, Field(discriminator="event_type")]
