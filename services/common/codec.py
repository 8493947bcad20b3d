"""The one codec: bytes <-> events, keys, and dead-letter envelopes.

Faust has no pydantic support, so every consumer decodes raw bytes here.

>>> from datetime import datetime, timezone
>>> from schemas import LabelledExample, CATALOGUE
>>> ex = LabelledExample(stream="s", example_id="1", features={"x": 1.5}, label="a",
...                      event_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> decode(encode(ex), CATALOGUE["examples.raw"]) == ex
True
>>> decode(b'{"event_type": "labelled_example", "schema_version": 9}', CATALOGUE["examples.raw"])
Traceback (most recent call last):
...
services.common.errors.UnsupportedSchemaVersion: labelled_example schema_version 9 ...
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas import (
    AliasMoved,
    DeadLetter,
    Event,
    ModelLoaded,
    ModelLoadFailed,
    ModelVersionPublished,
    ReasonCode,
    TopicSpec,
    derive_id,
)
from services.common.errors import ContractViolation, UnparseableEvent, UnsupportedSchemaVersion


def encode(event: Event) -> bytes:
    """The JSON bytes of an event."""
    return event.model_dump_json().encode()


def event_key(event: Event) -> bytes | None:
    """The Kafka key of an event, by the rules of the topic table."""
    if isinstance(event, ModelVersionPublished | AliasMoved):
        return event.key.encode()
    if isinstance(event, ModelLoaded | ModelLoadFailed):
        return event.replica_id.encode()
    if isinstance(event, DeadLetter) and event.stream is None:
        return event.source_topic.encode()
    stream = getattr(event, "stream", None)
    return stream.encode() if isinstance(stream, str) else None


@cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def decode(data: bytes | None, target: TopicSpec | type[Event]) -> Event:
    """Validate ``data`` as one of the target's event classes.

    Raises :class:`UnparseableEvent` (also for a record without a value: a tombstone),
    :class:`UnsupportedSchemaVersion` or :class:`ContractViolation`, each carrying its
    dead-letter reason code.
    """
    if data is None:
        raise UnparseableEvent("no value (a tombstone)")
    annotation = target.event if isinstance(target, TopicSpec) else target
    try:
        event: Event = _adapter(annotation).validate_json(data)
        return event
    except ValidationError as exc:
        raise _diagnose(data, target, exc) from exc
    except RecursionError as exc:  # a validator deeper than the stack: never a handler error
        raise UnparseableEvent(_TOO_DEEP) from exc


# What a producer is told when its JSON nests deeper than the parser goes.
_TOO_DEEP = (
    "JSON nested too deeply to parse (over about 200 levels of arrays or objects); "
    "events are flat: an example's features are one object of numbers, strings and bools"
)


def _diagnose(data: bytes, target: TopicSpec | type[Event], exc: ValidationError) -> Exception:
    """The most specific reason why ``data`` did not validate."""
    if any(
        err["type"] == "json_invalid" and "recursion limit" in str(err.get("ctx", {}).get("error"))
        for err in exc.errors()
    ):
        return UnparseableEvent(_TOO_DEEP)
    classes = target.event_classes if isinstance(target, TopicSpec) else (target,)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return UnparseableEvent(f"not UTF-8: {err.reason} at byte {err.start}")
    try:
        obj = json.loads(text)
    except ValueError as err:
        return UnparseableEvent(f"not JSON: {err}")
    except RecursionError:
        return UnparseableEvent(_TOO_DEEP)
    if not isinstance(obj, dict):
        return ContractViolation(f"expected a JSON object, got {type(obj).__name__}")
    by_type = {cls.type_name(): cls for cls in classes}
    cls = by_type.get(str(obj.get("event_type"))) if len(classes) > 1 else classes[0]
    if cls is None:
        return ContractViolation(
            f"event_type {obj.get('event_type')!r} is not one of {', '.join(sorted(by_type))}"
        )
    version = obj.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > cls.SCHEMA_VERSION:
        return UnsupportedSchemaVersion(
            f"{cls.type_name()} schema_version {version} is newer than {cls.SCHEMA_VERSION}, "
            "the newest this service knows; upgrade the consumer"
        )
    return ContractViolation(summarize(exc))


def summarize(exc: ValidationError, limit: int = 3) -> str:
    """A short, readable account of a validation error: field paths and messages."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function"))
        parts.append(f"{loc or 'event'}: {err.get('msg')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def dead_letter(
    *,
    reason: ReasonCode,
    detail: str,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    stream: str | None = None,
    example_id: str | None = None,
    source_event_id: str | None = None,
) -> DeadLetter:
    """A dead-letter envelope for the message at ``topic/partition/offset``.

    Its ``event_id`` is derived from the source position, so a redelivered message
    yields the same envelope id and consumers can de-duplicate it.
    """
    return DeadLetter(
        event_id=derive_id(f"{topic}/{partition}/{offset}", f"dead:{reason}"),
        reason=reason,
        detail=detail,
        service=service,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        source_key=key,
        original=value,
        stream=stream,
        example_id=example_id,
        source_event_id=source_event_id,
    )
