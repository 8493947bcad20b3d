"""Dead-letter envelopes: a message that could not be handled, kept exactly as it came."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from schemas.base import Event


class ReasonCode(StrEnum):
    """Why a message went to a dead-letter topic: a closed set."""

    UNPARSEABLE = "unparseable"  # not UTF-8, not JSON
    CONTRACT_VIOLATION = "contract_violation"  # JSON that breaks the event contract
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_STREAM = "unknown_stream"
    MISSING_FEATURE = "missing_feature"
    UNEXPECTED_FEATURE = "unexpected_feature"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"  # NaN, +inf, -inf
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CATEGORY = "unknown_category"
    BAD_LABEL = "bad_label"
    DUPLICATE_EXAMPLE_ID = "duplicate_example_id"
    CONFLICTING_REDELIVERY = "conflicting_redelivery"  # accepted ids, other content
    OVERSIZE = "oversize"
    EVENT_TIME_FUTURE = "event_time_future"
    EVENT_TIME_TOO_OLD = "event_time_too_old"
    HANDLER_ERROR = "handler_error"  # a consumer failed on a well-formed event


class DeadLetter(Event):
    """Sent by the validator (``examples.dead``) and any consumer (``events.dead``).

    ``original`` holds the source bytes exactly (base64 in JSON), so a fixed message
    can be replayed with its ids intact.
    """

    # bytes travel as base64 in JSON and stay raw bytes in Python
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    event_type: Literal["dead_letter"] = "dead_letter"
    reason: ReasonCode
    detail: str = Field(description="what is wrong, in words a person can act on")
    service: str = Field(description="the service that rejected the message")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    source_key: bytes | None = None
    original: bytes = Field(description="the message's value, byte for byte")
    stream: str | None = Field(default=None, description="the stream, when it could be read")
    example_id: str | None = None
    source_event_id: str | None = Field(
        default=None, description="the rejected message's event_id, when it could be read"
    )
