"""Is a record of a compacted topic (``models``, ``streams``) a usable value for its key?

Every reader of those topics asks the same question: the model subscriber, the stream
config followers and the registry's warden, which re-asserts the current value when the
answer is no. :func:`read_value` answers it once: the decoded event, ``None`` for a
tombstone (each reader decides what a deletion means to it), or a :class:`Refusal` whose
``kind`` says why (``unparseable``, ``unsupported_schema_version``,
``unknown_event_type``, ``contract_violation``, ``key_mismatch``, ``no_version``) with the
dead-letter reason code and a detail.

>>> from schemas import CATALOGUE
>>> read_value(CATALOGUE["streams"], b"sea", b"{oops").kind
'unparseable'
>>> read_value(CATALOGUE["streams"], b"sea", None) is None
True
>>> doc = b'{"event_type": "stream_config", "stream": "lake", "version": 2, "spec": {'
>>> doc += b'"features": [{"name": "x", "type": "number"}], "label": {"kind": "number"}}}'
>>> refusal = read_value(CATALOGUE["streams"], b"sea", doc)
>>> refusal.kind, refusal.detail
('key_mismatch', "a stream_config of 'lake' under the key 'sea'")
>>> read_value(CATALOGUE["streams"], b"lake", doc).version
2
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import Event, ReasonCode, StreamConfig, TopicSpec
from services.common.codec import decode
from services.common.errors import CodecError, UnparseableEvent, UnsupportedSchemaVersion

__all__ = ["Refusal", "own_key", "read_value"]


@dataclass(frozen=True)
class Refusal:
    """Why a record is not a usable value for its key."""

    kind: str
    reason: ReasonCode
    detail: str


def own_key(event: Event) -> str:
    """The key an event belongs under: its stream for a config, else its ``key``."""
    if isinstance(event, StreamConfig):
        return event.stream
    key: str = event.key  # type: ignore[attr-defined]  # the models topic's events
    return key


def read_value(topic: TopicSpec, key: bytes | None, value: bytes | None) -> Event | Refusal | None:
    """The event ``value`` holds if it is a usable value under ``key``; None for a
    tombstone; else a :class:`Refusal`."""
    if value is None:
        return None
    try:
        event = decode(value, topic)
    except UnparseableEvent as exc:
        return Refusal("unparseable", exc.reason, exc.detail)
    except UnsupportedSchemaVersion as exc:
        return Refusal("unsupported_schema_version", exc.reason, exc.detail)
    except CodecError as exc:
        unknown = exc.detail.startswith("event_type ") and " is not one of " in exc.detail
        return Refusal(
            "unknown_event_type" if unknown else "contract_violation", exc.reason, exc.detail
        )
    name = key.decode(errors="replace") if key is not None else None
    own = own_key(event)
    if own != name:
        return Refusal(
            "key_mismatch",
            ReasonCode.CONTRACT_VIOLATION,
            f"a {event.type_name()} of {own!r} under the key {name!r}",
        )
    if isinstance(event, StreamConfig) and event.version is None:
        return Refusal(
            "no_version", ReasonCode.CONTRACT_VIOLATION, f"a config of {own!r} without a version"
        )
    return event
