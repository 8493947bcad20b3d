"""Events on the compacted ``models`` topic: versions and alias moves.

Models travel by reference (URI + sha256 + signature), never as bytes in a message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue

from schemas.base import Event, Record
from schemas.lineage import Lineage

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ArtifactRef(Record):
    """Where a model artifact lives and how to check it before loading."""

    uri: str = Field(min_length=1, description="file:// URL or registry /artifacts/{sha256}")
    sha256: str = Field(pattern=SHA256_PATTERN)
    signature: str = Field(min_length=1, description="hex HMAC-SHA256 of the artifact bytes")
    key_id: str = Field(min_length=1)
    size: int = Field(ge=0)


class ModelVersionPublished(Event):
    """Sent by the registry when a model version is registered (key ``<model>:v<version>``)."""

    event_type: Literal["model_version_published"] = "model_version_published"
    model: str = Field(min_length=1)
    version: int = Field(ge=1)
    kind: Literal["online", "batch"]
    flavor: Literal["river", "sklearn"]
    algorithm: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    artifact: ArtifactRef
    spec_sha256: str = Field(pattern=SHA256_PATTERN)
    lineage: Lineage = Field(default_factory=Lineage)
    parent_version: int | None = Field(default=None, ge=1)
    status: Literal["registered", "archived"] = "registered"

    @property
    def key(self) -> str:
        """The compaction key of this event."""
        return f"{self.model}:v{self.version}"


class AliasReason(StrEnum):
    """Why an alias moved."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    MANUAL = "manual"  # set by hand
    ONLINE_UPDATE = "online_update"
    COLD_START = "cold_start"


class AliasMoved(Event):
    """Sent by the registry when an alias moves (key ``<model>@<alias>``).

    ``to_version`` None means the alias was removed.
    """

    event_type: Literal["alias_moved"] = "alias_moved"
    model: str = Field(min_length=1)
    alias: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    from_version: int | None = Field(default=None, ge=1)
    to_version: int | None = Field(default=None, ge=1)
    reason: AliasReason
    actor: str = Field(default="unknown", description="service or user that moved it")
    evidence: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """The compaction key of this event."""
        return f"{self.model}@{self.alias}"


ModelEvent = Annotated[ModelVersionPublished | AliasMoved, Field(discriminator="event_type")]
