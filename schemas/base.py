"""The event base class every message on a driftline topic derives from.

>>> from typing import Literal
>>> class Ping(Event):
...     '''A test event.'''
...     event_type: Literal["ping"] = "ping"
>>> p = Ping()
>>> p.schema_version, p.event_type
(1, 'ping')
>>> Ping.model_validate_json(p.model_dump_json()) == p
True
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# Namespace for ids derived from other ids (uuid5), so redelivery re-derives the same id.
DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3a52-3d1e-4f0b-9a57-1c2d0d7e5a11")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def derive_id(source: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """A deterministic event id for an event derived from ``source`` (uuid5).

    >>> a = derive_id("2b1f1e4a-0000-4000-8000-000000000000", "valid")
    >>> a == derive_id("2b1f1e4a-0000-4000-8000-000000000000", "valid")
    True
    >>> a == derive_id("2b1f1e4a-0000-4000-8000-000000000000", "dead")
    False
    """
    return uuid.uuid5(DERIVED_ID_NAMESPACE, f"{purpose}:{source}")


class Record(BaseModel):
    """A frozen value object that is part of an event (not sent on its own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Record):
    """Base of every event: frozen, closed, versioned, identified.

    Subclasses declare ``event_type`` as a ``Literal`` and set ``SCHEMA_VERSION`` to the
    newest version they know; new fields are optional and bump it.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="names this message; consumers de-duplicate on it"
    )
    occurred_at: AwareDatetime = Field(
        default_factory=utcnow, description="when the event happened (UTC)"
    )
    schema_version: int = Field(default=1, ge=1, description="version of this event's schema")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > cls.SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {value} is newer than {cls.SCHEMA_VERSION}, "
                f"the newest this code knows for {cls.__name__}"
            )
        return value

    @classmethod
    def type_name(cls) -> str:
        """The value of this class's ``event_type`` discriminator."""
        default: Any = cls.model_fields["event_type"].default
        return str(default)
