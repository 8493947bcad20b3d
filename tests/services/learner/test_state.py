"""PartitionState: de-duplication, config changes, deterministic output ids."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from schemas import LabelledExample, StreamConfig
from services.learner.ids import IdWindow, digest
from services.learner.state import PartitionMark, PartitionState, StreamTrack
from tests.streams import agrawal, agrawal_config

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


def test_a_new_config_version_without_rebuild_asks_for_a_snapshot() -> None:
    """Followers pause at a newer spec version until a snapshot of that config exists:
    a published stream (one with an online version) takes one at the change; a rebuild
    or a stream never snapshotted does not (cold start stays at K examples)."""
    state = PartitionState("valid", 0)
    data = stream(30)
    for offset, ex in enumerate(data[:10]):
        assert not state.handle(ex, offset=offset, config=cfg(1)).reconfigured
    assert not state.handle(data[10], offset=10, config=cfg(2, margin=0.3)).reconfigured
    state.streams["s"].online_version = 1
    assert state.handle(data[11], offset=11, config=cfg(3, margin=0.2)).reconfigured
    assert not state.handle(data[12], offset=12, config=cfg(3, margin=0.2)).reconfigured
    changed = cfg(4).model_copy(update={"model": cfg(4).model.model_copy(update={"seed": 7})})
    assert not state.handle(data[13], offset=13, config=changed).reconfigured


def test_a_new_stream_and_a_rebuilt_learner_are_due_a_version_early() -> None:
    """The learner service's ``first_version_at`` reaches every learner a state builds: a
    new stream's, and the one a spec change rebuilds (it starts cold again)."""
    state = PartitionState("valid", 0)
    data = stream(60)
    due = [
        offset
        for offset, ex in enumerate(data[:30])
        if state.handle(ex, offset=offset, config=cfg(1), first_version_at=10).version_due
    ]
    changed = cfg(2).model_copy(update={"model": cfg(2).model.model_copy(update={"seed": 7})})
    due += [
        offset
        for offset, ex in enumerate(data[30:], start=30)
        if state.handle(ex, offset=offset, config=changed, first_version_at=10).version_due
    ]
    assert due == [9, 39]  # the 10th example of each learner


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
    assert list(track.seen) == [digest(str(i)) for i in range(20, 30)]  # the newest 10, in order
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
    track.seen = {str(i) for i in range(5)}  # type: ignore[assignment]  # before the bound
    restored: PartitionState = pickle.loads(pickle.dumps(state))  # noqa: S301 - our bytes
    assert restored.handle(examples[2], offset=5, config=config).duplicate
    assert isinstance(restored.streams["s"].seen, IdWindow)


def test_a_checkpoint_with_an_ordered_dict_of_ids_restores_and_still_deduplicates() -> None:
    config = cfg()
    examples = stream(5)
    state = PartitionState(topic="valid", partition=0)
    for offset, example in enumerate(examples):
        state.handle(example, offset=offset, config=config)
    track = state.streams["s"]
    track.seen = OrderedDict.fromkeys(str(i) for i in range(5))  # type: ignore[assignment]
    restored: PartitionState = pickle.loads(pickle.dumps(state))  # noqa: S301 - our bytes
    assert restored.handle(examples[2], offset=5, config=config).duplicate
    assert list(restored.streams["s"].seen) == [digest(str(i)) for i in range(5)]  # in order


def test_remembered_ids_pickle_to_8_bytes_each() -> None:
    ids = [f"example-{i:08d}" for i in range(10_000)]
    before = len(pickle.dumps(OrderedDict.fromkeys(ids)))
    window = IdWindow(ids)
    after = len(pickle.dumps(window))
    assert after < 8 * len(ids) + 200 < before / 2
    restored: IdWindow = pickle.loads(pickle.dumps(window))  # noqa: S301 - our bytes
    assert all(i in restored for i in ids[:100]) and "example-x" not in restored


def test_only_streams_that_changed_are_marked() -> None:
    config, other = cfg(), cfg().model_copy(update={"stream": "t"})
    examples = stream(6)
    state = PartitionState(topic="valid", partition=0)
    for offset, example in enumerate(examples[:3]):
        state.handle(example, offset=offset, config=config)
    t = examples[3].model_copy(update={"stream": "t"})
    state.handle(t, offset=3, config=other)
    assert state.changed == {"s": 0, "t": 3}  # the first record that changed each
    assert state.mark().next_offset == 0  # held back to the first unsaved change
    state.saved(["s", "t"])
    assert state.mark().next_offset == 4
    state.handle(examples[1], offset=4, config=config)  # a redelivery: counted by s
    assert state.changed == {"s": 4} and state.streams["s"].duplicates == 1
    state.saved(["s"])
    state.handle(examples[4], offset=5, config=config)
    assert state.changed == {"s": 5}


def tracks_of(state: PartitionState) -> dict[str, tuple[StreamTrack, int]]:
    """Each stream's checkpoint as the edge saves it: a pickled copy at the position."""
    return {
        name: (pickle.loads(pickle.dumps(track)), state.next_offset)  # noqa: S301
        for name, track in state.streams.items()
    }


def two_streams(n: int) -> list[LabelledExample]:
    """``n`` examples alternating between streams s (even offsets) and t (odd)."""
    return [
        e if i % 2 == 0 else e.model_copy(update={"stream": "t"}) for i, e in enumerate(stream(n))
    ]


def configs() -> dict[str, StreamConfig]:
    return {"s": cfg(), "t": cfg().model_copy(update={"stream": "t"})}


def learned(state: PartitionState, examples: list[LabelledExample], start: int) -> list[int]:
    """Feed ``examples[start:]`` at their offsets; the offsets that were learned."""
    by_stream = configs()
    out = []
    for offset in range(start, len(examples)):
        e = examples[offset]
        if state.handle(e, offset=offset, config=by_stream[e.stream]).learned:
            out.append(offset)
    return out


def test_resume_seeks_to_the_smallest_stream_offset_and_skips_what_each_learned() -> None:
    examples = two_streams(40)
    state = PartitionState(topic="valid", partition=0)
    learned(state, examples[:10], 0)
    saved = tracks_of(state)  # both streams at 10
    learned(state, examples[:20], 10)
    saved["s"] = tracks_of(state)["s"]  # a crash after s was saved at 20, before t and the mark
    mark = PartitionMark("valid", 0, 10)
    restored = PartitionState.resume("valid", 0, mark=mark, streams=saved)
    assert restored is not None and restored.next_offset == 10
    assert learned(restored, examples, 10) == [*range(11, 20, 2), *range(20, 40)]
    assert restored.streams["s"].learner.examples_seen == 20
    assert restored.streams["t"].learner.examples_seen == 20

    reference = PartitionState(topic="valid", partition=0)
    learned(reference, examples, 0)
    for name in ("s", "t"):
        got, want = restored.streams[name].learner, reference.streams[name].learner
        assert got.snapshot() == want.snapshot()


def test_an_idle_stream_is_current_up_to_the_mark() -> None:
    examples = stream(30)
    state = PartitionState(topic="valid", partition=0)
    learned(state, examples[:5], 0)
    saved = tracks_of(state)  # s saved at 5, then idle: records 5.. are another stream's
    mark = PartitionMark("valid", 0, 25)
    restored = PartitionState.resume("valid", 0, mark=mark, streams=saved)
    assert restored is not None and restored.next_offset == 25
    assert restored.changed == {} and not restored.must_save


def test_a_whole_partition_checkpoint_still_restores_and_is_superseded() -> None:
    examples = two_streams(30)
    state = PartitionState(topic="valid", partition=0)
    learned(state, examples[:10], 0)
    legacy = pickle.loads(pickle.dumps(replace(state, changed={})))  # noqa: S301
    del legacy.changed, legacy.must_save  # pickled before the fields existed
    restored = PartitionState.resume("valid", 0, mark=legacy, streams={})
    assert restored is not None and restored.next_offset == 10
    assert restored.must_save == {"s", "t"}  # all written at the next checkpoint
    assert restored.mark().next_offset == 10
    assert learned(restored, examples, 10) == list(range(10, 30))
    # a stream checkpoint newer than the whole-partition one wins
    newer = PartitionState.resume("valid", 0, mark=legacy, streams={"s": tracks_of(restored)["s"]})
    assert newer is not None and newer.must_save == {"t"} and newer.next_offset == 10
    assert newer.streams["s"].resume_at == 30


def test_a_stream_not_yet_saved_when_the_learner_died_is_learned_again() -> None:
    examples = two_streams(40)
    only_s = [e if e.stream == "s" else e.model_copy(update={"stream": "s"}) for e in examples]
    state = PartitionState(topic="valid", partition=0)
    learned(state, only_s[:10], 0)  # t has no record yet
    saved = tracks_of(state)
    learned(state, examples[:20], 10)  # t starts at 11
    saved["s"] = tracks_of(state)["s"]  # s saved at 20, then a crash: t and the mark not
    restored = PartitionState.resume("valid", 0, mark=PartitionMark("valid", 0, 10), streams=saved)
    assert restored is not None and restored.next_offset == 10
    assert learned(restored, examples, 10) == [*range(11, 20, 2), *range(20, 40)]
    assert restored.streams["t"].learner.examples_seen == 15  # 11, 13, ..., 39
    # before any mark: from the beginning
    first = PartitionState.resume("valid", 0, mark=None, streams={"s": saved["s"]})
    assert first is not None and first.next_offset == 0
