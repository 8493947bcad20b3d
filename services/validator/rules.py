"""The validator's pure core: raw bytes in, a normalized valid example or a dead letter out.

No Kafka, no faust, no I/O: :func:`validate` takes the message's bytes and position,
the live specs, the duplicate index and the clock, and returns exactly one of

- a :class:`~schemas.LabelledExample` for ``examples.valid``: ``event_id`` derived from
  the raw one (``derive_id(raw_event_id, "valid")``), ``raw_event_id`` and
  ``spec_version`` stamped, features in spec order with number features as floats
  (``1`` -> ``1.0``), nullable features that were absent written as ``null``, class
  labels as the class value (an integral float such as ``1.0`` matches the int class
  ``1``), number labels as floats and ``event_time`` in UTC;
- a :class:`~schemas.DeadLetter` carrying one :class:`~schemas.ReasonCode` and a detail
  a person can act on, with the original bytes.

:func:`judge` wraps it so that nothing escapes: an unexpected exception becomes a
``handler_error`` dead letter (faust acks a message whose agent raised).

Checks run in this order and the first failing group gives the reason: size
(``oversize``), the event contract (``unparseable``, ``contract_violation``,
``unsupported_schema_version``), redelivery (an accepted example seen again under
the same raw ``event_id`` with the same content is re-emitted unchanged, whatever the
spec says now; with other content it is ``conflicting_redelivery``),
``unknown_stream``, event time (``event_time_future``, ``event_time_too_old``), the
features (``unexpected_feature``, ``missing_feature``, ``wrong_type``, ``non_finite``,
``out_of_range``, ``unknown_category``, in that order of precedence; the detail names
every offending feature), the label (``bad_label``, or ``non_finite`` for a NaN or
infinite number), and last ``duplicate_example_id``.

A raw message without an ``event_id`` gets one derived from its position
(``derive_id("<topic>/<partition>/<offset>", "raw")``), so that a redelivery is still
recognised; one without ``occurred_at`` takes its ``event_time``, so that its valid
event is the same on every delivery.

>>> from datetime import datetime, timezone
>>> from schemas import StreamConfig
>>> specs = SpecRegistry()
>>> _ = specs.apply(StreamConfig.model_validate({"stream": "sea", "version": 1, "spec": {
...     "features": [{"name": "x", "type": "number", "min": 0, "max": 10}],
...     "label": {"kind": "class", "classes": [False, True]}}}))
>>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> raw = (b'{"event_type": "labelled_example", "stream": "sea", "example_id": "1", '
...        b'"features": {"x": 3}, "label": true, "event_time": "2026-01-01T00:00:00Z"}')
>>> out = validate(raw, Position("raw", 0, 7), specs, DuplicateIndex(), now)
>>> out.features, out.spec_version
({'x': 3.0}, 1)
>>> bad = raw.replace(b'"x": 3', b'"x": 30')
>>> letter = validate(bad, Position("raw", 0, 8), specs, DuplicateIndex(), now)
>>> letter.reason.value, letter.detail
('out_of_range', "feature 'x' = 30 is outside [0, 10] (stream 'sea' spec v1)")
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from schemas import CATALOGUE, DeadLetter, LabelledExample, ReasonCode, derive_id
from services.common.codec import dead_letter, decode
from services.common.errors import CodecError
from services.validator.dedupe import Accepted, DuplicateIndex, content_digest
from services.validator.specs import BOOL, CATEGORY, NUMBER, CompiledSpec, SpecRegistry

SERVICE: Final = "validator"
DEFAULT_MAX_BYTES: Final = 64 * 1024
# An oversize message is kept whole in its dead letter up to this size; beyond it the
# envelope (base64) would not fit the broker's default 1 MB limit, so it is cut.
MAX_ORIGINAL_BYTES: Final = 512 * 1024
# The Prometheus ``stream`` label of messages whose stream has no spec (or is unreadable):
# names from the wire must not become label values, or a bad producer blows up cardinality.
NO_STREAM: Final = "-"
RAW: Final = CATALOGUE["examples.raw"]

# Feature problems, most fundamental first: the first present names the dead letter.
_PRECEDENCE: Final = (
    ReasonCode.UNEXPECTED_FEATURE,
    ReasonCode.MISSING_FEATURE,
    ReasonCode.WRONG_TYPE,
    ReasonCode.NON_FINITE,
    ReasonCode.OUT_OF_RANGE,
    ReasonCode.UNKNOWN_CATEGORY,
    ReasonCode.BAD_LABEL,
)
_ABSENT: Final = object()
_SHOWN: Final = 8  # how many names, categories or classes a detail lists


@dataclass(frozen=True, slots=True)
class Position:
    """Where a raw message came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass
class QualityStats:
    """Data-quality counts gathered by :func:`validate`; the edge turns them into metrics.

    Keys are ``(stream, outcome)`` (``valid``, ``rejected``, ``redelivered``),
    ``(stream, reason)`` and ``(stream, feature)``; ``stream`` is :data:`NO_STREAM` for
    messages of unknown or unreadable streams.
    """

    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)
    values: Counter[tuple[str, str]] = field(default_factory=Counter)
    missing: Counter[tuple[str, str]] = field(default_factory=Counter)
    out_of_range: Counter[tuple[str, str]] = field(default_factory=Counter)

    def clear(self) -> None:
        """Forget every count (after the edge has published them)."""
        for counter in (self.outcomes, self.rejected, self.values, self.missing):
            counter.clear()
        self.out_of_range.clear()


def judge(
    value: bytes,
    position: Position,
    specs: SpecRegistry,
    duplicates: DuplicateIndex,
    now: datetime,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stats: QualityStats | None = None,
) -> LabelledExample | DeadLetter:
    """:func:`validate`, with any unexpected exception turned into a ``handler_error``."""
    try:
        return validate(value, position, specs, duplicates, now, max_bytes=max_bytes, stats=stats)
    except Exception as exc:  # every failure must become a dead letter, never escape
        if stats is not None:
            stats.outcomes[(NO_STREAM, "rejected")] += 1
            stats.rejected[(NO_STREAM, ReasonCode.HANDLER_ERROR.value)] += 1
        return dead_letter(
            reason=ReasonCode.HANDLER_ERROR,
            detail=(
                f"the validator failed on this message ({type(exc).__name__}: {exc}); "
                "this is a bug in driftline: report it with this dead letter"
            ),
            service=SERVICE,
            topic=position.topic,
            partition=position.partition,
            offset=position.offset,
            key=position.key,
            value=_kept(value),
        )


def validate(
    value: bytes,
    position: Position,
    specs: SpecRegistry,
    duplicates: DuplicateIndex,
    now: datetime,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stats: QualityStats | None = None,
) -> LabelledExample | DeadLetter:
    """Judge one raw message; records accepted ids in ``duplicates``.

    ``now`` must be timezone-aware; ``stats``, when given, accumulates counts.
    """
    if stats is None:
        stats = QualityStats()
    if len(value) > max_bytes:
        stream, example_id, event_id = _peek(value)
        return _reject(
            ReasonCode.OVERSIZE,
            f"message is {len(value):,} bytes, over the limit of {max_bytes:,} "
            "(DRIFTLINE_VALIDATOR_MAX_MESSAGE_BYTES)"
            + (
                f"; only its first {MAX_ORIGINAL_BYTES:,} bytes are kept here"
                if len(value) > MAX_ORIGINAL_BYTES
                else ""
            ),
            value,
            position,
            stats,
            stream=stream,
            example_id=example_id,
            event_id=event_id,
        )
    try:
        example = decode(value, RAW)
    except CodecError as exc:
        stream, example_id, event_id = _peek(value)
        return _reject(
            exc.reason,
            exc.detail,
            value,
            position,
            stats,
            stream=stream,
            example_id=example_id,
            event_id=event_id,
        )
    if not isinstance(example, LabelledExample):  # the topic's only class
        raise TypeError(f"decoded {type(example).__name__}, expected LabelledExample")

    fields_set = example.model_fields_set
    raw_id = (
        example.event_id
        if "event_id" in fields_set
        else derive_id(f"{position.topic}/{position.partition}/{position.offset}", "raw")
    )
    stream, example_id = example.stream, example.example_id
    prior = duplicates.get(stream, example_id)
    if prior is not None and prior.raw_event_id == raw_id:
        return _redelivered(example, raw_id, prior, value, position, specs, stats)

    spec = specs.latest(stream)
    if spec is None:
        known = list(specs.versions())
        return _reject(
            ReasonCode.UNKNOWN_STREAM,
            f"no spec is published for stream {stream!r}; publish one with "
            "`driftline spec publish FILE`"
            + (f" (known streams: {_listing(known)})" if known else " (none is published yet)"),
            value,
            position,
            stats,
            stream=stream,
            example_id=example_id,
            event_id=str(raw_id),
        )
    where = f"(stream {stream!r} spec v{spec.version})"

    def reject(reason: ReasonCode, detail: str) -> DeadLetter:
        return _reject(
            reason,
            detail,
            value,
            position,
            stats,
            stream=stream,
            example_id=example_id,
            event_id=str(raw_id),
            metric_stream=stream,
        )

    event_time = example.event_time
    ahead = event_time - now
    if ahead > spec.max_future:
        return reject(
            ReasonCode.EVENT_TIME_FUTURE,
            f"event_time {event_time.isoformat()} is {_duration(ahead.total_seconds())} ahead of "
            f"the validator's clock ({now.isoformat(timespec='seconds')}); the spec allows "
            f"{spec.max_future.total_seconds():g} s (spec.max_future_s) {where}; check the "
            "producer's clock and time zone",
        )
    if spec.max_age is not None and -ahead > spec.max_age:
        return reject(
            ReasonCode.EVENT_TIME_TOO_OLD,
            f"event_time {event_time.isoformat()} is {_duration(-ahead.total_seconds())} old; the "
            f"spec allows {spec.max_age.total_seconds():g} s (spec.max_age_s) {where}",
        )

    problems: dict[ReasonCode, list[str]] = {}
    normalized = _check_features(example.features, spec, stats, problems)
    label_value = _check_label(example.label, spec, problems)
    if problems:
        reason = next(r for r in _PRECEDENCE if r in problems)
        return reject(reason, _describe(reason, problems, where))

    if prior is not None:
        return reject(
            ReasonCode.DUPLICATE_EXAMPLE_ID,
            f"example_id {example_id!r} of stream {stream!r} was already accepted under "
            f"event_id {prior.raw_event_id}; this message has event_id {raw_id}. A retry "
            "must re-send the same event_id; a new example needs a new example_id",
        )
    valid = _valid(example, raw_id, normalized, label_value, spec.version)
    duplicates.record(
        stream,
        example_id,
        raw_id,
        spec.version,
        digest=content_digest(valid.features, valid.label, valid.event_time),
    )
    stats.outcomes[(stream, "valid")] += 1
    return valid


# -- the checks --------------------------------------------------------------------


def _check_features(
    features: dict[str, Any],
    spec: CompiledSpec,
    stats: QualityStats,
    problems: dict[ReasonCode, list[str]],
) -> dict[str, Any]:
    """The normalized features; every problem found is added to ``problems``."""
    stream = spec.stream
    unexpected = [name for name in features if name not in spec.names]
    if unexpected:
        problems[ReasonCode.UNEXPECTED_FEATURE] = [
            f"feature(s) {_listing(unexpected)} are not in the spec; it has "
            f"{_listing([r.name for r in spec.features])}"
        ]
    normalized: dict[str, Any] = {}
    for rule in spec.features:
        name = rule.name
        key = (stream, name)
        stats.values[key] += 1
        value = features.get(name, _ABSENT)
        if value is None or value is _ABSENT:
            stats.missing[key] += 1
            normalized[name] = None
            if not rule.nullable:
                problems.setdefault(ReasonCode.MISSING_FEATURE, []).append(
                    f"feature {name!r} is {'absent' if value is _ABSENT else 'null'} "
                    "and the spec does not allow it to be missing (nullable: false)"
                )
            continue
        kind = rule.kind
        vtype = type(value)
        if kind == NUMBER:
            if vtype is float:
                number = value
                if not math.isfinite(number):
                    problems.setdefault(ReasonCode.NON_FINITE, []).append(
                        f"feature {name!r} is {_show(value)}; numbers must be finite"
                    )
                    continue
            elif vtype is int:
                try:
                    number = float(value)
                except OverflowError:
                    problems.setdefault(ReasonCode.NON_FINITE, []).append(
                        f"feature {name!r} = {_show(value)} is too large for a float"
                    )
                    continue
            else:
                problems.setdefault(ReasonCode.WRONG_TYPE, []).append(
                    f"feature {name!r} is a number, got {_kind(value)} {_show(value)}"
                )
                continue
            low, high = rule.min, rule.max
            if (low is not None and number < low) or (high is not None and number > high):
                stats.out_of_range[key] += 1
                problems.setdefault(ReasonCode.OUT_OF_RANGE, []).append(
                    f"feature {name!r} = {_num(value)} is outside "
                    f"[{_num(low) if low is not None else '-inf'}, "
                    f"{_num(high) if high is not None else 'inf'}]"
                )
            normalized[name] = number
        elif kind == CATEGORY:
            if vtype is not str:
                problems.setdefault(ReasonCode.WRONG_TYPE, []).append(
                    f"feature {name!r} is a category (a string), got {_kind(value)} {_show(value)}"
                )
                continue
            if rule.categories is not None and value not in rule.categories:
                problems.setdefault(ReasonCode.UNKNOWN_CATEGORY, []).append(
                    f"feature {name!r} = {_show(value)} is not one of its categories "
                    f"({_listing(rule.shown_categories)})"
                )
            normalized[name] = value
        elif kind == BOOL:
            if vtype is not bool:
                problems.setdefault(ReasonCode.WRONG_TYPE, []).append(
                    f"feature {name!r} is a bool (true/false), got {_kind(value)} {_show(value)}"
                )
                continue
            normalized[name] = value
    return normalized


def _check_label(label: Any, spec: CompiledSpec, problems: dict[ReasonCode, list[str]]) -> Any:
    ltype = type(label)
    if spec.label_kind == "class":
        found = spec.classes.get((ltype, label), _ABSENT)
        if found is _ABSENT and ltype is float and math.isfinite(label) and label.is_integer():
            found = spec.classes.get((int, int(label)), _ABSENT)
        if found is _ABSENT:
            problems.setdefault(ReasonCode.BAD_LABEL, []).append(
                f"label {_show(label)} ({_kind(label)}) is not one of the classes "
                f"{_listing([_show(c) for c in spec.shown_classes], quote=False)}"
            )
            return None
        return found
    if ltype is not int and ltype is not float:
        problems.setdefault(ReasonCode.BAD_LABEL, []).append(
            f"the label is a number, got {_kind(label)} {_show(label)}"
        )
        return None
    try:
        number = float(label)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        problems.setdefault(ReasonCode.NON_FINITE, []).append(
            f"label is {_show(label)}; numbers must be finite"
        )
        return None
    if spec.label_min is not None and number < spec.label_min:
        problems.setdefault(ReasonCode.BAD_LABEL, []).append(
            f"label {_num(label)} is below the spec's minimum {_num(spec.label_min)}"
        )
    elif spec.label_max is not None and number > spec.label_max:
        problems.setdefault(ReasonCode.BAD_LABEL, []).append(
            f"label {_num(label)} is above the spec's maximum {_num(spec.label_max)}"
        )
    return number


# -- building the outcome -----------------------------------------------------------


def _valid(
    example: LabelledExample,
    raw_id: Any,
    features: dict[str, Any],
    label: Any,
    spec_version: int,
) -> LabelledExample:
    update: dict[str, Any] = {
        "event_id": derive_id(raw_id, "valid"),
        "raw_event_id": raw_id,
        "spec_version": spec_version,
        "features": features,
        "label": label,
        "event_time": example.event_time.astimezone(UTC),
    }
    if "occurred_at" not in example.model_fields_set:
        update["occurred_at"] = update["event_time"]
    return example.model_copy(update=update)


def _redelivered(
    example: LabelledExample,
    raw_id: Any,
    prior: Accepted,
    value: bytes,
    position: Position,
    specs: SpecRegistry,
    stats: QualityStats,
) -> LabelledExample | DeadLetter:
    """Re-emit an accepted example exactly as it was first emitted (same ids, same spec
    version), or dead-letter a message that re-uses its ids with other content.

    The message is normalized by the spec version that accepted it and its content
    compared with the digest recorded then: equal content is a redelivery, whatever the
    spec says now; anything else (other values, values the spec refuses) never reaches
    the valid topic under ids that were already accepted.
    """
    stream = example.stream
    # After a restart only the newest config of a compacted topic may be known: its
    # normalization is the same unless the features changed, and the digest decides.
    spec = specs.get(stream, prior.spec_version) or specs.latest(stream)
    problems: dict[ReasonCode, list[str]] = {}
    if spec is not None:
        normalized = _check_features(example.features, spec, QualityStats(), problems)
        label = _check_label(example.label, spec, problems)
        if not problems:
            valid = _valid(example, raw_id, normalized, label, prior.spec_version)
            if content_digest(valid.features, valid.label, valid.event_time) == prior.digest:
                stats.outcomes[(stream, "redelivered")] += 1
                return valid
    if spec is None:
        why = f"no spec of stream {stream!r} is known any more"
    elif problems:
        why = _describe(next(r for r in _PRECEDENCE if r in problems), problems, "").strip()
    else:
        why = "its features, label or event_time differ from what was accepted"
    return _reject(
        ReasonCode.CONFLICTING_REDELIVERY,
        f"example_id {example.example_id!r} of stream {stream!r} was accepted under event_id "
        f"{raw_id} (spec v{prior.spec_version}) with other content: {why}. A retry must "
        "re-send the same content; a corrected example needs a new event_id and example_id",
        value,
        position,
        stats,
        stream=stream,
        example_id=example.example_id,
        event_id=str(raw_id),
        metric_stream=stream if specs.latest(stream) is not None else NO_STREAM,
    )


def _reject(
    reason: ReasonCode,
    detail: str,
    value: bytes,
    position: Position,
    stats: QualityStats,
    *,
    stream: str | None,
    example_id: str | None,
    event_id: str | None,
    metric_stream: str = NO_STREAM,
) -> DeadLetter:
    stats.outcomes[(metric_stream, "rejected")] += 1
    stats.rejected[(metric_stream, reason.value)] += 1
    return dead_letter(
        reason=reason,
        detail=detail,
        service=SERVICE,
        topic=position.topic,
        partition=position.partition,
        offset=position.offset,
        key=position.key,
        value=_kept(value),
        stream=stream,
        example_id=example_id,
        source_event_id=event_id,
    )


def _kept(value: bytes) -> bytes:
    return value if len(value) <= MAX_ORIGINAL_BYTES else value[:MAX_ORIGINAL_BYTES]


def _peek(value: bytes) -> tuple[str | None, str | None, str | None]:
    """Stream, example id and event id of a message that failed the contract, if readable."""
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None, None, None
    if not isinstance(obj, dict):
        return None, None, None

    def text(name: str) -> str | None:
        found = obj.get(name)
        return found if isinstance(found, str) and 0 < len(found) <= 200 else None

    return text("stream"), text("example_id"), text("event_id")


# -- words --------------------------------------------------------------------------


def _describe(reason: ReasonCode, problems: dict[ReasonCode, list[str]], where: str) -> str:
    items = problems[reason]
    text = "; ".join(items[:3])
    if len(items) > 3:
        text += f"; and {len(items) - 3} more"
    others = [r.value for r in _PRECEDENCE if r in problems and r is not reason]
    text += f" {where}"
    if others:
        text += f"; also: {', '.join(others)}"
    return text


def _duration(seconds: float) -> str:
    """``90 s``, or ``3.5 days`` beyond two days."""
    return f"{seconds:,.0f} s" if seconds < 2 * 86_400 else f"{seconds / 86_400:,.1f} days"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _num(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= 30 else f"{value:.6e}"
    return f"{value:g}"


def _listing(items: Any, *, quote: bool = True) -> str:
    shown = [repr(i) if quote else str(i) for i in list(items)[:_SHOWN]]
    more = len(list(items)) - _SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
