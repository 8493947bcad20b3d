"""Pure rule tests: one or more cases for every reason code, normalization, redelivery."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DeadLetter, LabelledExample, ReasonCode, StreamConfig, derive_id
from services.common.codec import decode, encode
from services.validator.dedupe import DuplicateIndex, content_digest
from services.validator.rules import (
    MAX_ORIGINAL_BYTES,
    NO_STREAM,
    Position,
    QualityStats,
    judge,
    validate,
)
from services.validator.specs import SpecRegistry

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POS = Position("t.examples.raw", 2, 41, b"sea")
EVENT_ID = "2b1f1e4a-0000-4000-8000-000000000001"

SPEC: dict[str, Any] = {
    "features": [
        {"name": "x", "type": "number", "min": 0, "max": 10},
        {"name": "color", "type": "category", "categories": ["red", "green"]},
        {"name": "member", "type": "bool"},
        {"name": "note", "type": "category", "nullable": True},
    ],
    "label": {"kind": "class", "classes": [False, True]},
    "max_future_s": 60,
    "max_age_s": 86_400,
}


def config(stream: str = "sea", version: int = 1, **spec: Any) -> StreamConfig:
    return StreamConfig.model_validate(
        {"stream": stream, "version": version, "spec": {**SPEC, **spec}}
    )


def registry(*configs: StreamConfig) -> SpecRegistry:
    reg = SpecRegistry()
    for cfg in configs or (config(),):
        reg.apply(cfg)
    return reg


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": "labelled_example",
        "schema_version": 1,
        "event_id": EVENT_ID,
        "occurred_at": "2026-06-01T11:59:00Z",
        "stream": "sea",
        "example_id": "42",
        "features": {"x": 3, "color": "red", "member": True},
        "label": True,
        "event_time": "2026-06-01T13:58:00+02:00",
    }
    base.update(changes)
    return base


def raw(**changes: Any) -> bytes:
    return json.dumps(doc(**changes)).encode()


def features(**changes: Any) -> dict[str, Any]:
    return {**doc()["features"], **changes}


def run(
    value: bytes, reg: SpecRegistry | None = None, index: DuplicateIndex | None = None, **kw: Any
) -> LabelledExample | DeadLetter:
    reg = registry() if reg is None else reg
    index = DuplicateIndex() if index is None else index
    return validate(value, POS, reg, index, NOW, **kw)


def rejected(value: bytes, reason: ReasonCode, *parts: str, **kw: Any) -> DeadLetter:
    out = run(value, **kw)
    assert isinstance(out, DeadLetter), f"expected {reason}, got a valid example"
    assert out.reason is reason, out.detail
    for part in parts:
        assert part in out.detail, out.detail
    assert out.original == value
    assert (out.source_topic, out.source_partition, out.source_offset) == ("t.examples.raw", 2, 41)
    assert out.source_key == b"sea"
    assert out.service == "validator"
    return out


# -- valid examples ------------------------------------------------------------------


def test_valid_example_is_normalized_and_stamped() -> None:
    out = run(raw())
    assert isinstance(out, LabelledExample)
    assert out.features == {"x": 3.0, "color": "red", "member": True, "note": None}
    assert type(out.features["x"]) is float
    assert list(out.features) == ["x", "color", "member", "note"]  # spec order
    assert out.spec_version == 1
    assert out.raw_event_id == uuid.UUID(EVENT_ID)
    assert out.event_id == derive_id(EVENT_ID, "valid")
    assert out.event_time == datetime(2026, 6, 1, 11, 58, tzinfo=UTC)
    assert out.event_time.utcoffset() == timedelta(0)
    assert out.example_id == "42" and out.stream == "sea" and out.label is True
    assert decode(encode(out), LabelledExample) == out  # what goes on the wire round-trips


def test_valid_output_is_deterministic() -> None:
    first, second = run(raw()), run(raw())
    assert isinstance(first, LabelledExample) and isinstance(second, LabelledExample)
    assert encode(first) == encode(second)


def test_integral_float_label_matches_an_int_class() -> None:
    reg = registry(config(label={"kind": "class", "classes": [0, 1]}))
    out = run(raw(label=1.0), reg)
    assert isinstance(out, LabelledExample)
    assert out.label == 1 and type(out.label) is int


def test_number_label_becomes_float() -> None:
    reg = registry(config(label={"kind": "number", "min": 0, "max": 100}))
    out = run(raw(label=7), reg)
    assert isinstance(out, LabelledExample)
    assert out.label == 7.0 and type(out.label) is float


def test_missing_event_id_and_occurred_at_are_derived_deterministically() -> None:
    body = doc()
    del body["event_id"], body["occurred_at"]
    value = json.dumps(body).encode()
    index = DuplicateIndex()
    first = run(value, index=index)
    again = run(value, index=index)  # a redelivery of the same position
    assert isinstance(first, LabelledExample) and isinstance(again, LabelledExample)
    assert first.raw_event_id == derive_id("t.examples.raw/2/41", "raw")
    assert first.occurred_at == first.event_time
    assert encode(first) == encode(again)
    moved = validate(value, Position("t.examples.raw", 2, 99), registry(), index, NOW)
    assert isinstance(moved, DeadLetter)  # the same bytes re-sent: a new raw event
    assert moved.reason is ReasonCode.DUPLICATE_EXAMPLE_ID


# -- every reason code ---------------------------------------------------------------


def test_oversize() -> None:
    value = raw(example_id="x" * 200)
    letter = rejected(
        value,
        ReasonCode.OVERSIZE,
        "over the limit of 300",
        "DRIFTLINE_VALIDATOR_MAX_MESSAGE_BYTES",
        max_bytes=300,
    )
    assert letter.stream == "sea"


def test_oversize_beyond_what_a_dead_letter_can_hold_is_cut() -> None:
    value = b"x" * (MAX_ORIGINAL_BYTES + 10)
    out = run(value, max_bytes=1024)
    assert isinstance(out, DeadLetter) and out.reason is ReasonCode.OVERSIZE
    assert out.original == value[:MAX_ORIGINAL_BYTES]
    assert "only its first" in out.detail


@pytest.mark.parametrize(
    ("value", "part"),
    [(b"\xff\xfe{}", "not UTF-8"), (b"{not json", "not JSON"), (b"", "not JSON")],
)
def test_unparseable(value: bytes, part: str) -> None:
    rejected(value, ReasonCode.UNPARSEABLE, part)


@pytest.mark.parametrize(
    ("value", "part"),
    [
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in doc().items() if k != "label"}).encode(), "label"),
        (raw(extra_field=1), "extra_field"),
        (raw(event_type="prediction"), "event_type"),
        (raw(stream="bad stream!"), "stream"),
        (raw(features={"x": [1, 2]}), "features.x"),
        (raw(event_time="2026-06-01T12:00:00"), "event_time"),
    ],
)
def test_contract_violation(value: bytes, part: str) -> None:
    rejected(value, ReasonCode.CONTRACT_VIOLATION, part)


def test_contract_violation_keeps_what_it_can_read() -> None:
    letter = rejected(raw(label=None), ReasonCode.CONTRACT_VIOLATION)
    assert (letter.stream, letter.example_id, letter.source_event_id) == ("sea", "42", EVENT_ID)


def test_unsupported_schema_version() -> None:
    rejected(raw(schema_version=2), ReasonCode.UNSUPPORTED_SCHEMA_VERSION, "schema_version 2")


def test_unknown_stream() -> None:
    letter = rejected(
        raw(stream="other"),
        ReasonCode.UNKNOWN_STREAM,
        "'other'",
        "driftline spec publish",
        "known streams: 'sea'",
    )
    assert letter.stream == "other"


@pytest.mark.parametrize(
    ("feats", "part"),
    [
        ({"x": 3, "color": "red"}, "'member' is absent"),
        (features(member=None), "'member' is null"),
    ],
)
def test_missing_feature(feats: dict[str, Any], part: str) -> None:
    rejected(raw(features=feats), ReasonCode.MISSING_FEATURE, part, "nullable")


def test_nullable_feature_may_be_missing_or_null() -> None:
    assert isinstance(run(raw(features=features(note=None))), LabelledExample)
    assert isinstance(run(raw(features=features())), LabelledExample)


def test_unexpected_feature() -> None:
    rejected(
        raw(features=features(size=1)),
        ReasonCode.UNEXPECTED_FEATURE,
        "'size'",
        "'x', 'color', 'member', 'note'",
    )


@pytest.mark.parametrize(
    ("feats", "part"),
    [
        (features(x="3"), "'x' is a number, got string '3'"),
        (features(x=True), "'x' is a number, got bool true"),
        (features(color=1), "'color' is a category (a string), got int 1"),
        (features(member=1), "'member' is a bool (true/false), got int 1"),
        (features(member="true"), "got string 'true'"),
    ],
)
def test_wrong_type(feats: dict[str, Any], part: str) -> None:
    rejected(raw(features=feats), ReasonCode.WRONG_TYPE, part)


@pytest.mark.parametrize(
    ("literal", "part"),
    [
        (b"NaN", "'x' is NaN"),
        (b"Infinity", "'x' is Infinity"),
        (b"-Infinity", "'x' is -Infinity"),
        (b"1e400", "'x' is Infinity"),
        (b"1" + b"0" * 400, "too large for a float"),
    ],
)
def test_non_finite_feature(literal: bytes, part: str) -> None:
    value = raw().replace(b'"x": 3', b'"x": ' + literal)
    rejected(value, ReasonCode.NON_FINITE, part)


def test_non_finite_number_label() -> None:
    reg = registry(config(label={"kind": "number"}))
    value = raw().replace(b'"label": true', b'"label": NaN')
    rejected(value, ReasonCode.NON_FINITE, "label is NaN", reg=reg)


@pytest.mark.parametrize(("x", "part"), [(-0.5, "= -0.5 is outside [0, 10]"), (11, "= 11 is")])
def test_out_of_range(x: float, part: str) -> None:
    rejected(raw(features=features(x=x)), ReasonCode.OUT_OF_RANGE, part, "spec v1")


def test_range_bounds_are_inclusive() -> None:
    for x in (0, 10, 10.0):
        assert isinstance(run(raw(features=features(x=x))), LabelledExample)


def test_unknown_category() -> None:
    rejected(
        raw(features=features(color="blue")),
        ReasonCode.UNKNOWN_CATEGORY,
        "'blue'",
        "'red', 'green'",
    )


def test_category_without_a_closed_set_takes_any_string() -> None:
    assert isinstance(run(raw(features=features(note="anything at all"))), LabelledExample)


@pytest.mark.parametrize(
    ("label_spec", "label", "part"),
    [
        (None, "maybe", "label 'maybe' (string) is not one of the classes false, true"),
        (None, 1, "label 1 (int)"),
        ({"kind": "class", "classes": [0, 1]}, True, "label true (bool)"),
        ({"kind": "class", "classes": [0, 1]}, 1.5, "label 1.5 (float)"),
        ({"kind": "class", "classes": ["1", "2"]}, 1, "label 1 (int)"),
        ({"kind": "number"}, "3", "the label is a number, got string '3'"),
        ({"kind": "number"}, False, "got bool false"),
        ({"kind": "number", "max": 5}, 6, "above the spec's maximum 5"),
        ({"kind": "number", "min": 0}, -1, "below the spec's minimum 0"),
    ],
)
def test_bad_label(label_spec: dict[str, Any] | None, label: Any, part: str) -> None:
    reg = registry(config(label=label_spec)) if label_spec else registry()
    rejected(raw(label=label), ReasonCode.BAD_LABEL, part, reg=reg)


def test_duplicate_example_id() -> None:
    index = DuplicateIndex()
    assert isinstance(run(raw(), index=index), LabelledExample)
    other = "2b1f1e4a-0000-4000-8000-000000000002"
    letter = rejected(
        raw(event_id=other), ReasonCode.DUPLICATE_EXAMPLE_ID, EVENT_ID, other, index=index
    )
    assert letter.example_id == "42" and letter.source_event_id == other


def test_event_time_future() -> None:
    rejected(
        raw(event_time="2026-06-01T12:05:00Z"),
        ReasonCode.EVENT_TIME_FUTURE,
        "300 s ahead",
        "allows 60 s",
        "spec.max_future_s",
    )
    assert isinstance(run(raw(event_time="2026-06-01T12:00:59Z")), LabelledExample)


def test_event_time_too_old() -> None:
    rejected(
        raw(event_time="2026-05-30T12:00:00Z"),
        ReasonCode.EVENT_TIME_TOO_OLD,
        "2.0 days old",
        "spec.max_age_s",
    )
    no_limit = registry(config(max_age_s=None))
    assert isinstance(run(raw(event_time="2000-01-01T00:00:00Z"), no_limit), LabelledExample)


def test_handler_error_never_escapes() -> None:
    class Broken(SpecRegistry):
        def latest(self, stream: str) -> Any:
            raise RuntimeError("boom")

    stats = QualityStats()
    out = judge(raw(), POS, Broken(), DuplicateIndex(), NOW, stats=stats)
    assert isinstance(out, DeadLetter)
    assert out.reason is ReasonCode.HANDLER_ERROR
    assert "RuntimeError: boom" in out.detail and out.original == raw()
    assert stats.rejected[(NO_STREAM, "handler_error")] == 1


def test_every_reason_code_is_covered() -> None:
    tested = {name for name in globals() if name.startswith("test_")}
    for reason in ReasonCode:
        assert any(name.startswith(f"test_{reason.value}") for name in tested), reason


# -- precedence, redelivery, only accepted ids count --------------------------------


def test_first_problem_names_the_reason_and_the_detail_lists_the_rest() -> None:
    value = raw(features=features(x=99, size=1, color="blue"), label="maybe")
    letter = rejected(value, ReasonCode.UNEXPECTED_FEATURE, "'size'")
    assert "also: out_of_range, unknown_category, bad_label" in letter.detail


def test_every_offending_feature_is_named() -> None:
    reg = registry(
        config(features=[{"name": f"f{i}", "type": "number", "max": 1} for i in range(5)])
    )
    value = raw(features={f"f{i}": 5 for i in range(5)})
    letter = rejected(value, ReasonCode.OUT_OF_RANGE, "'f0'", "'f1'", "'f2'", "and 2 more", reg=reg)
    assert "'f3'" not in letter.detail


def test_redelivery_is_re_emitted_unchanged_even_after_a_spec_change() -> None:
    index, reg = DuplicateIndex(), registry()
    first = run(raw(), reg, index)
    reg.apply(config(version=2, features=[{"name": "x", "type": "number", "max": 1}]))
    again = run(raw(), reg, index)  # a v2 judgement would reject it
    assert isinstance(first, LabelledExample) and isinstance(again, LabelledExample)
    assert encode(again) == encode(first)
    assert again.spec_version == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"features": {"x": "3", "color": "red", "member": True}},  # a string for a number
        {"features": {"x": 1e300, "color": "red", "member": True}},  # out of range
        {"features": {"x": 4, "color": "red", "member": True}},  # valid, but other content
        {"features": {"x": 3, "color": "red", "member": True, "extra": 1}},
        {"label": "maybe"},  # not a class
        {"label": False},  # a valid class, but another one
        {"event_time": "2999-01-01T00:00:00Z"},
    ],
    ids=["string", "huge", "other-value", "extra-feature", "bad-class", "other-class", "future"],
)
def test_conflicting_redelivery_never_reaches_the_valid_topic(changes: dict[str, Any]) -> None:
    index, stats = DuplicateIndex(), QualityStats()
    first = run(raw(), index=index, stats=stats)
    assert isinstance(first, LabelledExample)
    letter = rejected(
        raw(**changes), ReasonCode.CONFLICTING_REDELIVERY, "other content", index=index
    )
    assert letter.example_id == "42" and letter.source_event_id == EVENT_ID
    again = run(raw(), index=index)  # the true redelivery is still re-emitted
    assert isinstance(again, LabelledExample) and encode(again) == encode(first)


def test_redelivery_after_an_index_rebuilt_from_the_valid_topic() -> None:
    """The digest read back from a valid event's JSON equals the one recorded at first."""
    first = run(raw())
    assert isinstance(first, LabelledExample)
    sent = json.loads(encode(first))
    rebuilt = DuplicateIndex()
    rebuilt.record(
        sent["stream"],
        sent["example_id"],
        uuid.UUID(sent["raw_event_id"]),
        sent["spec_version"],
        digest=content_digest(sent["features"], sent["label"], sent["event_time"]),
    )
    again = run(raw(), index=rebuilt)
    assert isinstance(again, LabelledExample) and encode(again) == encode(first)
    other = run(raw(label=False), index=rebuilt)
    assert isinstance(other, DeadLetter)
    assert other.reason is ReasonCode.CONFLICTING_REDELIVERY


def test_redelivery_counts_as_redelivered() -> None:
    index, stats = DuplicateIndex(), QualityStats()
    run(raw(), index=index, stats=stats)
    run(raw(), index=index, stats=stats)
    assert stats.outcomes[("sea", "valid")] == 1
    assert stats.outcomes[("sea", "redelivered")] == 1


def test_only_accepted_ids_count() -> None:
    index = DuplicateIndex()
    first = run(raw(features=features(x=99)), index=index)
    assert isinstance(first, DeadLetter)
    retry = run(raw(event_id="2b1f1e4a-0000-4000-8000-000000000009"), index=index)
    assert isinstance(retry, LabelledExample)


def test_new_spec_version_judges_new_examples() -> None:
    reg = registry()
    reg.apply(
        config(
            version=2,
            features=[
                {"name": "x", "type": "number", "max": 100},
                {"name": "color", "type": "category"},
                {"name": "member", "type": "bool"},
            ],
        )
    )
    out = run(raw(features={"x": 50, "color": "blue", "member": False}), reg)
    assert isinstance(out, LabelledExample) and out.spec_version == 2


def test_quality_stats() -> None:
    stats = QualityStats()
    run(raw(), stats=stats)
    run(raw(example_id="2", features=features(x=50)), stats=stats)
    run(raw(example_id="3", features={"x": 1, "color": "red"}), stats=stats)
    run(b"junk", stats=stats)
    assert stats.outcomes == {
        ("sea", "valid"): 1,
        ("sea", "rejected"): 2,
        (NO_STREAM, "rejected"): 1,
    }
    assert stats.rejected[("sea", "out_of_range")] == 1
    assert stats.rejected[(NO_STREAM, "unparseable")] == 1
    assert stats.values[("sea", "x")] == 3
    assert stats.missing[("sea", "note")] == 3 and stats.missing[("sea", "member")] == 1
    assert stats.out_of_range == {("sea", "x"): 1}
    stats.clear()
    assert not stats.outcomes and not stats.values


def test_aware_timezones_are_normalized() -> None:
    out = run(
        raw(event_time=datetime(2026, 6, 1, 7, 0, tzinfo=timezone(-timedelta(hours=5))).isoformat())
    )
    assert isinstance(out, LabelledExample)
    assert out.event_time == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# -- properties ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _check(value: bytes) -> None:
    index = DuplicateIndex()
    out = judge(value, POS, registry(), index, NOW, max_bytes=4096)
    assert isinstance(out, LabelledExample | DeadLetter)
    if isinstance(out, DeadLetter):
        assert out.original == value[:MAX_ORIGINAL_BYTES]
        assert out.reason is not ReasonCode.HANDLER_ERROR, out.detail
        assert decode(encode(out), DeadLetter) == out
    else:
        assert out.spec_version == 1 and out.raw_event_id is not None
        assert decode(encode(out), LabelledExample) == out
        assert index.get(out.stream, out.example_id) is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_get_a_verdict(value: bytes) -> None:
    _check(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    field=st.sampled_from(sorted(doc())),
    replacement=json_values,
    feature=st.sampled_from(["x", "color", "member", "note", "extra"]),
    feature_value=json_values,
)
def test_mutated_examples_get_a_verdict(
    field: str, replacement: Any, feature: str, feature_value: Any
) -> None:
    _check(json.dumps(doc(**{field: replacement}), allow_nan=True).encode())
    _check(json.dumps(doc(features=features(**{feature: feature_value})), allow_nan=True).encode())
