"""Serving replicas' acknowledgements on ``models.acks``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Event


class ModelLoaded(Event):
    """Sent by a serving replica once a version is loaded and swapped in."""

    event_type: Literal["model_loaded"] = "model_loaded"
    replica_id: str = Field(min_length=1)
    model: str
    version: int = Field(ge=1)
    alias: str | None = None
    load_ms: float = Field(ge=0)


class ModelLoadFailed(Event):
    """Sent by a serving replica that refused or failed to load a version."""

    event_type: Literal["model_load_failed"] = "model_load_failed"
    replica_id: str = Field(min_length=1)
    model: str
    version: int = Field(ge=1)
    alias: str | None = None
    reason: str = Field(description="e.g. bad_signature, sha256_mismatch, incompatible_spec")
    detail: str


AckEvent = Annotated[ModelLoaded | ModelLoadFailed, Field(discriminator="event_type")]
