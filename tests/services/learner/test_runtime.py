"""PartitionState: de-duplication, config changes, deterministic output ids."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from schemas import LabelledExample, StreamConfig
from services.learner.quality import agrawal, agrawal_config
from services.learner.runtime import PartitionState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cfg(version: int = 1, **policy: object) -> StreamConfig:
    body = agrawal_config().model_dump(mode="json") | {"stream": "s", "version": version}
    body["policy"] |= policy
    return StreamConfig.model_validate(body)


def stream(n: int, switch_at: int | None = None) -> list[LabelledExample]:
    return [
        LabelledExample(
            stream="s",
            example_id=str(i),
            features=x,
            label=y,
            event_time=T0 + timedelta(seconds=i),
            spec_version=1,
        )
        for i, (x, y) in enumerate(agrawal(1, n=n, switch_at=switch_at))
    ]


def test_duplicates_are_skipped_and_counted() -> None:
    state = PartitionState("valid", 0)
    data = stream(50)
    for offset, ex in enumerate(data + data[:10]):
        state.handle(ex, offset=offset, config=cfg())
    track = state.streams["s"]
    assert track.learner.examples_seen == 50 and state.duplicates == 10
    assert state.next_offset == 60
    assert track.lineage("valid", 0).ranges[0].start == 0
    assert track.lineage("valid", 0).ranges[0].end == 50


def test_policy_change_keeps_the_learner_spec_change_rebuilds_it() -> None:
    state = PartitionState("valid", 0)
    data = stream(30)
    for offset, ex in enumerate(data[:10]):
        state.handle(ex, offset=offset, config=cfg(1))
    kept = state.handle(data[10], offset=10, config=cfg(2, margin=0.3))
    assert not kept.rebuilt and state.streams["s"].learner.examples_seen == 11
    changed = cfg(3).model_copy(update={"model": cfg(3).model.model_copy(update={"seed": 7})})
    rebuilt = state.handle(data[11], offset=11, config=changed)
    assert rebuilt.rebuilt and state.streams["s"].learner.examples_seen == 1
    assert state.version_key("s") == "learner/s/valid/0/c3-o11/1"


def test_version_keys_of_one_stream_on_two_partitions_never_collide() -> None:
    """Two states of one stream (the valid topic grew) both start at offset 0 with the
    same config: their snapshots at the same count must not share an idempotency key."""
    data = stream(5)
    states = [PartitionState("valid", p) for p in (1, 3)]
    for state in states:
        for offset, ex in enumerate(data):
            state.handle(ex, offset=offset, config=cfg(1))
    keys = {state.version_key("s") for state in states}
    assert len(keys) == 2


def test_replay_from_a_pickled_state_gives_the_same_events() -> None:
    data = stream(6000, switch_at=3000)
    config = cfg(1, online_version_every=1000)
    state = PartitionState("valid", 0)
    first_run = []
    for offset, ex in enumerate(data):
        if offset == 2500:
            saved = pickle.dumps(state)
        handled = state.handle(ex, offset=offset, config=config)
        first_run += [e.event_id for e in handled.drift]
    assert first_run, "the switch at 3000 is detected"
    replay = pickle.loads(saved)  # noqa: S301 - bytes this test just made
    replayed = []
    for offset, ex in enumerate(data[2500:], start=2500):
        replayed += [e.event_id for e in replay.handle(ex, offset=offset, config=config).drift]
    assert replayed == first_run  # same ids: consumers de-duplicate a re-emitted event


def test_scheduled_retrain_requests_are_deterministic_and_ask_for_the_window() -> None:
    config = cfg(retrain={"every": 300, "window": 250}, drift={"data_drift": False})
    examples = stream(700)

    def run() -> list[tuple[str, int | None, str]]:
        state = PartitionState(topic="valid", partition=0)
        out = []
        for offset, example in enumerate(examples):
            handled = state.handle(example, offset=offset, config=config)
            if handled.retrain is not None:
                r = handled.retrain
                out.append((str(r.event_id), r.window, r.requested_by))
        return out

    first = run()
    assert [w for _, w, _ in first] == [250, 250]
    assert {by for _, _, by in first} == {"learner"}
    assert run() == first  # a redelivered stretch re-emits the same ids


def test_deduplication_remembers_a_bounded_window_of_ids() -> None:
    config = cfg()
    examples = stream(30)
    state = PartitionState(topic="valid", partition=0)
    for offset, example in enumerate(examples):
        state.handle(example, offset=offset, config=config, dedupe_window=10)
    track = state.streams["s"]
    assert list(track.seen) == [str(i) for i in range(20, 30)]  # the newest 10, in order
    again = state.handle(examples[25], offset=30, config=config, dedupe_window=10)
    assert again.duplicate and state.duplicates == 1
    older = state.handle(examples[5], offset=31, config=config, dedupe_window=10)
    assert older.learned  # beyond the window: learned again, as documented


def test_a_checkpoint_with_a_set_of_ids_restores_and_still_deduplicates() -> None:
    config = cfg()
    examples = stream(5)
    state = PartitionState(topic="valid", partition=0)
    for offset, example in enumerate(examples):
        state.handle(example, offset=offset, config=config)
    track = state.streams["s"]
    track.seen = set(track.seen)  # type: ignore[assignment]  # the layout before the bound
    restored: PartitionState = pickle.loads(pickle.dumps(state))  # noqa: S301 - our bytes
    assert restored.handle(examples[2], offset=5, config=config).duplicate
    assert isinstance(restored.streams["s"].seen, OrderedDict)
