"""The demo's view of the topics: accounting for every example, promotions and swaps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas import LabelledExample
from schemas.dead_letter import DeadLetter, ReasonCode
from schemas.fleet import ModelLoaded
from schemas.models import AliasMoved, AliasReason
from schemas.predictions import ModelAnswer, Prediction
from services.demo.state import DemoState

T = datetime(2026, 1, 1, tzinfo=UTC)


def example(i: int) -> LabelledExample:
    return LabelledExample(
        stream="s", example_id=str(i), features={"a": float(i)}, label=i % 2, event_time=T
    )


def dead(i: int | None, reason: ReasonCode = ReasonCode.MISSING_FEATURE) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        detail="x",
        service="validator",
        source_topic="raw",
        source_partition=0,
        source_offset=0 if i is None else i,
        original=b"{}",
        stream="s",
        example_id=None if i is None else str(i),
    )


def test_every_produced_example_is_valid_or_rejected() -> None:
    state = DemoState(stream="s")
    for i in range(5):
        state.expect(str(i), i)
    events = [example(i) for i in (0, 1, 3)]
    for event in [*events, events[1]]:  # the second one redelivered: counted once
        state.apply(event)
    state.apply(dead(2))
    assert state.unaccounted() == {"4"}
    state.apply(dead(4))
    state.apply(dead(None, ReasonCode.UNPARSEABLE))
    assert state.unaccounted() == set() and state.valid_messages == 3
    assert state.rejected_unreadable == 1
    assert state.dead_reasons == {"missing_feature": 2, "unparseable": 1}


def test_a_swap_is_a_promoted_champion_that_serving_loaded() -> None:
    state = DemoState(stream="s")
    state.expect("7", 7)
    cold = AliasMoved(model="s", alias="champion", to_version=1, reason=AliasReason.COLD_START)
    state.apply(cold)
    state.apply(ModelLoaded(replica_id="r", model="s", version=1, alias="champion", load_ms=2))
    state.apply(
        AliasMoved(
            model="s",
            alias="champion",
            from_version=1,
            to_version=3,
            reason=AliasReason.PROMOTED,
            actor="trainer",
        )
    )
    assert [m.to_version for m in state.promotions()] == [3]
    assert state.swaps() == []  # not loaded by serving yet
    state.apply(ModelLoaded(replica_id="r", model="s", version=3, alias="champion", load_ms=5))
    answer = ModelAnswer(model="s", version=3, prediction=1)
    state.apply(
        Prediction(
            stream="s", example_id="7", request_event_id=uuid.uuid4(), answer=answer, latency_ms=1
        )
    )
    (swap,) = state.swaps()
    assert (swap.version, swap.index, swap.load_ms) == (3, 7, 5)
    assert state.alias("champion") == 3 and state.answered[3] == 1


def test_events_of_other_streams_are_ignored() -> None:
    state = DemoState(stream="s")
    other = example(1).model_copy(update={"stream": "t", "event_id": uuid.uuid4()})
    state.apply(other)
    state.apply(AliasMoved(model="t", alias="champion", to_version=1, reason=AliasReason.MANUAL))
    assert state.valid_ids == set() and state.alias_moves == []
