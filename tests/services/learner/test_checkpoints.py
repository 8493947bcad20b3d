"""Learner.checkpoint: one checkpoint per stream, only for the streams that changed and
are due, then the partition's mark, held back to any change not saved; the offset
committed to the group is the mark's. The Kafka clients are replaced (no broker here);
the registry is real (SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.common.codec import encode
from services.common.settings import DriftlineSettings
from services.learner import app as learner_app
from services.learner.checkpoints import OWNER, partition_key, restore
from services.learner.settings import LearnerSettings
from services.learner.state import PartitionMark, PartitionState
from services.registry.client import Registry
from tests.keys import private_key_for
from tests.services.learner.test_poison import FakeConfigs, FakeProducer, config, example

TOPIC = "p.examples.valid"


class Consumer:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.committed: dict[Any, Any] = {}

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.committed.update(offsets)


@pytest.fixture
def learner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[learner_app.Learner]:
    monkeypatch.setattr(learner_app, "StreamConfigs", FakeConfigs)
    monkeypatch.setattr(learner_app, "open_producer", FakeProducer)
    monkeypatch.setattr(learner_app, "open_consumer", Consumer)
    settings = DriftlineSettings.load(
        env={},
        topic_prefix="p.",
        data_dir=tmp_path,
        signing_key=private_key_for("k" * 24),
        signing_key_id="k1",
    )
    registry = Registry.open(settings, relay=False)
    service = LearnerSettings(
        group_id=f"g-{uuid.uuid4().hex[:8]}", checkpoint_every=10, checkpoint_interval_s=3600
    )
    learner = learner_app.Learner(settings, service, registry)
    learner.configs.configs["t"] = config().model_copy(update={"stream": "t"})  # type: ignore[attr-defined]
    yield learner
    registry.close()


def feed(learner: learner_app.Learner, state: PartitionState, offsets: range, stream: str) -> None:
    for offset in offsets:
        value = encode(example(offset).model_copy(update={"stream": stream}))
        learner._one(state, SimpleNamespace(topic=TOPIC, partition=0, offset=offset, value=value))
    learner.dirty.add(0)


def test_only_the_streams_that_changed_are_checkpointed(learner: learner_app.Learner) -> None:
    registry = learner.registry
    state = learner.states[0] = PartitionState(TOPIC, 0)
    key = partition_key(learner.service.group_id, TOPIC, 0)
    prefix = f"{key}/streams/"
    feed(learner, state, range(0, 10), "s")
    feed(learner, state, range(10, 20), "t")
    learner.checkpoint({0})
    first = {cp.key: cp.sha256 for cp in registry.load_checkpoints(owner=OWNER, prefix=prefix)}
    assert set(first) == {f"{prefix}s", f"{prefix}t"}

    feed(learner, state, range(20, 30), "s")  # t stays idle
    learner.checkpoint({0})
    second = {cp.key: cp for cp in registry.load_checkpoints(owner=OWNER, prefix=prefix)}
    assert second[f"{prefix}t"].sha256 == first[f"{prefix}t"]  # not written again
    assert second[f"{prefix}t"].offsets == {"0": 20}
    assert second[f"{prefix}s"].sha256 != first[f"{prefix}s"]
    assert second[f"{prefix}s"].offsets == {"0": 30}
    mark = registry.load_checkpoint(owner=OWNER, key=key)
    assert mark is not None and mark.state == PartitionMark(TOPIC, 0, 30)
    (committed,) = learner.consumer.committed.values()
    assert committed == 30  # the seam commits plain next offsets

    restored = restore(registry, key=key, topic=TOPIC, partition=0)
    assert restored is not None and restored.next_offset == 30  # t is current to the mark
    assert {s: t.learner.examples_seen for s, t in restored.streams.items()} == {"s": 20, "t": 10}


def test_a_stream_not_due_holds_the_mark_back_and_is_saved_on_stop(
    learner: learner_app.Learner,
) -> None:
    registry = learner.registry
    state = learner.states[0] = PartitionState(TOPIC, 0)
    key = partition_key(learner.service.group_id, TOPIC, 0)
    prefix = f"{key}/streams/"
    feed(learner, state, range(0, 10), "s")  # due: checkpoint_every examples
    feed(learner, state, range(10, 13), "t")  # 3 examples, an hour before it is due
    feed(learner, state, range(13, 23), "s")
    learner.checkpoint({0})
    saved = {cp.key: cp.offsets for cp in registry.load_checkpoints(owner=OWNER, prefix=prefix)}
    assert saved == {f"{prefix}s": {"0": 23}}
    mark = registry.load_checkpoint(owner=OWNER, key=key)
    assert mark is not None and mark.state.next_offset == 10  # t's first unsaved record
    (committed,) = learner.consumer.committed.values()
    assert committed == 10
    assert 0 in learner.dirty  # t is still to be saved

    restored = restore(registry, key=key, topic=TOPIC, partition=0)
    assert restored is not None and restored.next_offset == 10
    assert restored.streams["s"].resume_at == 23 and "t" not in restored.streams

    learner.checkpoint({0}, everything=True)  # stop or revocation
    mark = registry.load_checkpoint(owner=OWNER, key=key)
    assert mark is not None and mark.state.next_offset == 23
    restored = restore(registry, key=key, topic=TOPIC, partition=0)
    assert restored is not None and restored.next_offset == 23
    assert {s: t.learner.examples_seen for s, t in restored.streams.items()} == {"s": 20, "t": 3}
