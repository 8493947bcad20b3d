"""Prediction requests and answers on Kafka, and shadow pairs for the evaluator."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import Field

from schemas.base import Event, Record
from schemas.examples import FeatureValue, Label


class PredictionRequest(Event):
    """Sent by clients to ``predictions.requests``."""

    event_type: Literal["prediction_request"] = "prediction_request"
    stream: str = Field(min_length=1)
    example_id: str = Field(min_length=1, description="joins the later label")
    features: dict[str, FeatureValue]


class ModelAnswer(Record):
    """One model's answer to one example."""

    model: str
    version: int = Field(ge=1)
    prediction: Label
    probabilities: dict[str, float] | None = None
    learned_examples: int | None = Field(
        default=None,
        ge=0,
        description="an online model: how many examples of its stream it had learned",
    )


class Prediction(Event):
    """Sent by serving to ``predictions``; names the model version that produced it."""

    SCHEMA_VERSION: ClassVar[int] = 2  # 2: answer.learned_examples
    schema_version: int = Field(default=2, ge=1, description="version of this event's schema")

    event_type: Literal["prediction"] = "prediction"
    stream: str = Field(min_length=1)
    example_id: str
    request_event_id: uuid.UUID
    answer: ModelAnswer
    latency_ms: float = Field(ge=0)


class ShadowPair(Event):
    """Sent by serving to ``shadow``: champion and challenger on the same request."""

    SCHEMA_VERSION: ClassVar[int] = 2  # 2: champion/challenger.learned_examples
    schema_version: int = Field(default=2, ge=1, description="version of this event's schema")

    event_type: Literal["shadow_pair"] = "shadow_pair"
    stream: str = Field(min_length=1)
    example_id: str
    request_event_id: uuid.UUID
    champion: ModelAnswer
    challenger: ModelAnswer
