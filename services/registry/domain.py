"""What the registry hands out: frozen pydantic models, never ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas import ArtifactRef, Lineage


class Domain(BaseModel):
    """Base of the registry's domain models."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SpecVersion(Domain):
    """A recorded stream config version."""

    stream: str
    version: int
    sha256: str
    spec_sha256: str
    config: dict[str, Any]
    recorded_at: AwareDatetime


class ModelVersion(Domain):
    """A registered model version."""

    model: str
    version: int
    kind: Literal["online", "batch"]
    flavor: Literal["river", "sklearn"]
    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, float]
    evaluation: dict[str, Any] = Field(
        default_factory=dict, description="e.g. per-segment metrics and the max gap"
    )
    spec_sha256: str
    artifact: ArtifactRef
    lineage: Lineage
    parent_version: int | None
    run_id: str | None
    training_duration_s: float | None
    status: str
    created_at: AwareDatetime


class ModelInfo(Domain):
    """A model: latest version, frozen flag and where its aliases point."""

    name: str
    latest_version: int
    frozen: bool
    frozen_reason: str | None
    aliases: dict[str, int | None]


class AliasMove(Domain):
    """One move of an alias."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str
    actor: str
    evidence: dict[str, Any]
    event_id: str
    moved_at: AwareDatetime


class Checkpoint(Domain):
    """A verified checkpoint: the state (unpickled after verification) and its offsets."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    owner: str
    key: str
    offsets: dict[str, Any]
    state: Any
    meta: dict[str, Any]
    sha256: str
    created_at: AwareDatetime


class Candidate(Domain):
    """A candidate tried by a training run."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    fit_s: float
    version: int | None
    note: str | None


class TrainingRun(Domain):
    """A training run and every candidate it tried."""

    id: str
    model: str
    trigger_event_id: str
    trigger: dict[str, Any]
    status: Literal["running", "succeeded", "failed", "rejected"]
    window: dict[str, Any]
    champion: dict[str, Any]
    decision: str | None
    winner_version: int | None
    started_at: AwareDatetime
    finished_at: datetime | None
    candidates: tuple[Candidate, ...] = ()


class GcReport(Domain):
    """What ``driftline gc`` removed."""

    artifacts: int
    checkpoints: int
    handled_events: int
    outbox: int


class VersionDraft(Domain):
    """What a writer says about a version it registers; the registry adds the number,
    the artifact reference (after signing the bytes) and the status."""

    kind: Literal["online", "batch"]
    flavor: Literal["river", "sklearn"]
    algorithm: str = Field(max_length=300)
    spec_sha256: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    parent_version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    run_id: str | None = Field(default=None, max_length=36)
    training_duration_s: float | None = Field(default=None, ge=0)
    idempotency_key: str | None = Field(
        default=None,
        max_length=300,
        description="registering again under the same key returns the first version",
    )


class StoredCheckpoint(Domain):
    """A checkpoint row as stored: where its signed bytes are and what they cover.

    The bytes are fetched separately (by ``id``) and verified by the reader before
    anything is unpickled.
    """

    id: int
    owner: str
    key: str
    sha256: str
    signature: str
    key_id: str
    offsets: dict[str, Any]
    meta: dict[str, Any]
    created_at: AwareDatetime
