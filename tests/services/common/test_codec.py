from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import CATALOGUE, AliasMoved, AliasReason, LabelledExample, ReasonCode
from services.common.codec import dead_letter, decode, encode, event_key
from services.common.errors import (
    CodecError,
    ContractViolation,
    UnparseableEvent,
    UnsupportedSchemaVersion,
)
from tests.schemas.samples import samples

RAW = CATALOGUE["examples.raw"]


def example(**kw: object) -> LabelledExample:
    base: dict[str, object] = dict(
        stream="s",
        example_id="1",
        features={"x": 1.0},
        label="a",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return LabelledExample.model_validate(base | kw)


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_round_trip_through_its_topic(event: object) -> None:
    spec = next(s for s in CATALOGUE.values() if type(event) in s.event_classes)
    assert decode(encode(event), spec) == event  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (b"\xff\xfe", UnparseableEvent, ReasonCode.UNPARSEABLE),
        (b"{not json", UnparseableEvent, ReasonCode.UNPARSEABLE),
        (b"[1, 2]", ContractViolation, ReasonCode.CONTRACT_VIOLATION),
        (b'{"stream": "s"}', ContractViolation, ReasonCode.CONTRACT_VIOLATION),
        (
            b'{"schema_version": 99}',
            UnsupportedSchemaVersion,
            ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
        ),
    ],
)
def test_decode_errors_carry_reason(
    data: bytes, error: type[CodecError], reason: ReasonCode
) -> None:
    with pytest.raises(error) as info:
        decode(data, RAW)
    assert info.value.reason is reason
    assert info.value.detail


def test_union_topic_names_allowed_types() -> None:
    with pytest.raises(ContractViolation, match="alias_moved"):
        decode(b'{"event_type": "nope"}', CATALOGUE["models"])


def test_contract_violation_names_the_field() -> None:
    data = json.loads(encode(example()))
    data["features"] = {"x": [1, 2]}
    with pytest.raises(ContractViolation, match=r"features\.x"):
        decode(json.dumps(data).encode(), RAW)


def test_strict_types_are_kept() -> None:
    ex = decode(encode(example(features={"a": "1", "b": True, "c": 1, "d": 1.5, "e": None})), RAW)
    assert ex.features == {"a": "1", "b": True, "c": 1, "d": 1.5, "e": None}  # type: ignore[attr-defined]
    assert [type(v) for v in ex.features.values()] == [str, bool, int, float, type(None)]  # type: ignore[attr-defined]


def test_keys_follow_the_topic_table() -> None:
    assert event_key(example()) == b"s"
    moved = AliasMoved(model="m", alias="champion", to_version=2, reason=AliasReason.MANUAL)
    assert event_key(moved) == b"m@champion"


def test_dead_letter_keeps_bytes_and_derives_its_id() -> None:
    kw = dict(
        reason=ReasonCode.OVERSIZE,
        detail="too big",
        service="validator",
        topic="t",
        partition=1,
        offset=7,
        key=b"k",
        value=b"\x00\xff raw",
    )
    first, again = dead_letter(**kw), dead_letter(**kw)  # type: ignore[arg-type]
    assert first.event_id == again.event_id
    decoded = decode(encode(first), CATALOGUE["examples.dead"])
    assert decoded.original == b"\x00\xff raw"  # type: ignore[attr-defined]


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_a_codec_error(data: bytes) -> None:
    try:
        decode(data, RAW)
    except CodecError as exc:
        assert exc.reason in ReasonCode
