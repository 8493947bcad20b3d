"""Checkpoints per stream, upgraded in place: a partition checkpointed whole (as before
checkpoints were per stream) restores, and the learner supersedes it with one checkpoint
per stream and a partition mark; every example is learned once."""

from __future__ import annotations

import signal
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from schemas import LabelledExample, StreamConfig, Topics
from services.common.kafka_client import canonical_partition, make_producer
from services.common.settings import DriftlineSettings
from services.learner.checkpoints import OWNER, partition_key
from services.learner.core import StreamLearner
from services.learner.state import PartitionMark, PartitionState, StreamTrack
from services.registry.client import Registry
from tests.integration.learner_support import (
    config,
    examples,
    learned,
    learner_env,
    start_learner,
)
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.keys import private_key_for

PARTITIONS = 4


def whole_partition_state(
    topic: str, partition: int, cfg_: StreamConfig, data: list[LabelledExample]
) -> PartitionState:
    """A partition's state as the learner pickled it before checkpoints were per stream:
    ids in an OrderedDict, no per-stream offsets or counts, no record of changed streams."""
    state = PartitionState(topic, partition)
    for offset, example in enumerate(data):
        state.handle(example, offset=offset, config=cfg_)
    for track in state.streams.values():
        track.seen = OrderedDict.fromkeys(e.example_id for e in data)  # type: ignore[assignment]
        del track.resume_at, track.duplicates
    del state.changed, state.must_save
    return state


def test_a_whole_partition_checkpoint_restores_then_checkpoints_go_per_stream(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(
        signing_key=private_key_for("learner-test-signing-key"), signing_key_id="k1"
    )
    valid = Topics(settings.topic_prefix).name("examples.valid")
    cfg = config("agr", online_every=100_000)
    data = examples("agr", 1000, seed=5)
    publish(settings, "streams", [cfg])
    home = canonical_partition(b"agr", PARTITIONS)
    # Offsets 0-599 hold records no learner could learn from: only the restored
    # checkpoint knows the first 600 examples.
    producer = make_producer(settings)
    for _ in range(600):
        producer.send(valid, key=b"agr", value=b"not an example", partition=home)
    producer.flush()
    producer.close()
    publish(settings, "examples.valid", data[600:])
    group = f"g-{uuid.uuid4().hex[:8]}"
    key = partition_key(group, valid, home)
    registry = Registry.open(settings, relay=False)
    registry.save_checkpoint(
        owner=OWNER,
        key=key,
        state=whole_partition_state(valid, home, cfg, data[:600]),
        offsets={str(home): 600},
        meta={"streams": {"agr": 600}, "duplicates": 0},
    )
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S="0.2")
    log = tmp_path / "learner.log"
    proc = start_learner(env, log)
    try:
        wait_for(
            lambda: learned(registry, group, valid, PARTITIONS) == {"agr": 1000},
            120,
            "the rest learned after the whole-partition checkpoint",
            proc,
            log,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        mark = registry.load_checkpoint(owner=OWNER, key=key)
        assert mark is not None and mark.state == PartitionMark(valid, home, 1000, 0)
        (stream_cp,) = registry.load_checkpoints(owner=OWNER, prefix=f"{key}/streams/")
        assert stream_cp.key == f"{key}/streams/agr" and stream_cp.offsets == {str(home): 1000}
        track = stream_cp.state
        assert isinstance(track, StreamTrack)
        assert track.learner.examples_seen == 1000 == len(track.seen)
        assert all(e.example_id in track.seen for e in data)
        reference = StreamLearner(cfg)
        for ex in data:
            reference.process(ex.features, ex.label)
        probe = examples("probe", 200, seed=11)
        got, want = track.learner.predictor(), reference.predictor()
        assert [got.predict_proba_one(p.features) for p in probe] == [
            want.predict_proba_one(p.features) for p in probe
        ]
    finally:
        registry.close()
