"""Events on the compacted ``models`` topic: versions and alias moves.

Models travel by reference (URI + sha256 + signature), never as bytes in a message.

Both events are signed by the registry (``signature``: Ed25519 over the event's canonical
JSON without the ``signature`` member: keys sorted, no whitespace, UTF-8); a consumer
verifies that signature with the registry's public key before it follows the event, and
the artifact's own signature, which binds the model name, version, sha256 and key id,
before it loads the bytes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, JsonValue

from schemas.base import Event, Record
from schemas.lineage import Lineage

SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ArtifactRef(Record):
    """Where a model artifact lives and how to check it before loading."""

    uri: str = Field(min_length=1, description="file:// URL or registry /artifacts/{sha256}")
    sha256: str = Field(pattern=SHA256_PATTERN)
    signature: str = Field(
        min_length=1,
        description="hex Ed25519 signature of the statement (model, version, sha256, key id); "
        "for artifacts signed before Ed25519, the hex HMAC-SHA256 of the bytes",
    )
    key_id: str = Field(min_length=1)
    size: int = Field(ge=0)
    url: str | None = Field(
        default=None,
        description="http(s) URL of the bytes on the registry's HTTP API "
        "(GET /artifacts/{sha256}), for consumers on other hosts; set when the registry "
        "knows DRIFTLINE_REGISTRY_HTTP_URL",
    )


class EventSignature(Record):
    """The registry's signature of a ``models`` event (Ed25519, hex)."""

    key_id: str = Field(min_length=1)
    value: str = Field(min_length=1, pattern=r"^[0-9a-f]+$")


class ModelVersionPublished(Event):
    """Sent by the registry when a model version is registered (key ``<model>:v<version>``)."""

    SCHEMA_VERSION: ClassVar[int] = 2  # 2: artifact.url, signature
    schema_version: int = Field(default=2, ge=1, description="version of this event's schema")

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
    signature: EventSignature | None = Field(
        default=None, description="the registry's signature of this event (required by consumers)"
    )

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

    SCHEMA_VERSION: ClassVar[int] = 2  # 2: signature
    schema_version: int = Field(default=2, ge=1, description="version of this event's schema")

    event_type: Literal["alias_moved"] = "alias_moved"
    model: str = Field(min_length=1)
    alias: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    from_version: int | None = Field(default=None, ge=1)
    to_version: int | None = Field(default=None, ge=1)
    reason: AliasReason
    actor: str = Field(default="unknown", description="service or user that moved it")
    evidence: dict[str, Any] = Field(default_factory=dict)
    signature: EventSignature | None = Field(
        default=None, description="the registry's signature of this event (required by consumers)"
    )

    @property
    def key(self) -> str:
        """The compaction key of this event."""
        return f"{self.model}@{self.alias}"


ModelEvent = Annotated[ModelVersionPublished | AliasMoved, Field(discriminator="event_type")]
