"""The learner on the real broker: kill -9 mid-stream, restart, nothing lost or learned
twice, and the model predicts exactly like an uncrashed run."""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import RetrainRequested, Topics
from services.common.settings import DriftlineSettings
from services.learner.core import StreamLearner
from services.learner.state import PartitionState
from services.registry.client import Registry
from tests.integration.learner_support import (
    KEY,
    checkpoints,
    config,
    examples,
    learned,
    learner_env,
    start_learner,
)
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, publish

# kill -9 and a second learner: both Kafka backends (make test)
pytestmark = pytest.mark.backends


# also with the registry reached over HTTP, on SQLite and PostgreSQL (make test)
@pytest.mark.registry_http
def test_kill_9_then_resume_exactly_once(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    topics = Topics(settings.topic_prefix)
    cfg = config("agr", online_every=1000, retrain_every=700)
    data = examples("agr", 5000, seed=7)
    redelivered = data[1000:1100]  # the validator re-emits some after its own crash
    publish(settings, "streams", [cfg])
    # the rest is published after the kill, so the kill always lands mid-stream
    publish(settings, "examples.valid", data[:3000] + redelivered)
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_EVERY="300")
    log = tmp_path / "learner.log"
    registry = Registry.open(settings, relay=False)
    valid = topics.name("examples.valid")
    try:
        first = start_learner(env, log)
        wait_for(
            lambda: sum(learned(registry, group, valid, 4).values()) >= 600,
            120,
            "a first checkpoint",
            first,
            log,
        )
        time.sleep(random.Random(7).uniform(0.0, 1.0))  # noqa: S311 - a kill at a random point
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert learned(registry, group, valid, 4)["agr"] < 5000
        publish(settings, "examples.valid", data[3000:])

        second = start_learner(env, log)
        wait_for(
            lambda: learned(registry, group, valid, 4).get("agr") == 5000,
            180,
            "all examples learned",
            second,
            log,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, log.read_text()[-3000:]

        (cp,) = [c for c in checkpoints(registry, group, valid, 4) if "agr" in c.state.streams]
        state = cp.state
        assert isinstance(state, PartitionState)
        track = state.streams["agr"]
        assert track.learner.examples_seen == 5000 and len(track.seen) == 5000
        assert state.duplicates == 100

        reference = StreamLearner(cfg)
        due = [
            o.example_count
            for o in (reference.process(ex.features, ex.label) for ex in data)
            if o.retrain_due
        ]
        probe = examples("agr", 300, seed=99)
        crashed = track.learner.predictor()
        assert [crashed.predict_proba_one(p.features) for p in probe] == [
            reference.predictor().predict_proba_one(p.features) for p in probe
        ]

        versions = registry.list_versions(model="agr")
        assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5]  # never twice
        assert [v.lineage.example_count for v in sorted(versions, key=lambda v: v.version)] == [
            1000,
            2000,
            3000,
            4000,
            5000,
        ]
        info = registry.get_model(name="agr")
        assert info is not None and info.aliases == {"champion": 5, "online": 5}

        # the scheduled retrain requests: each one published at least once across the
        # kill, under the same id when published again, and none extra
        drift = TopicReader(settings, "drift")
        wait_for(lambda: len({e.event_id for e in drift.poll()}) >= len(due), 60, "the requests")
        requests = [e for e in drift.poll() if isinstance(e, RetrainRequested)]
        drift.close()
        assert len(due) == 7 and len({r.event_id for r in requests}) == len(due)
        assert {(r.requested_by, r.window, r.stream) for r in requests} == {
            ("learner", cfg.policy.retrain.window, "agr")
        }
        reasons = {r.reason for r in requests}
        assert all(any(f"(example {n})" in reason for reason in reasons) for n in due)
    finally:
        registry.close()


STREAMS = ("stream-0", "stream-1", "stream-2", "stream-3")  # one per partition (murmur2)


def test_two_processes_split_streams_and_survive_a_kill(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    valid = Topics(settings.topic_prefix).name("examples.valid")
    n = 2500
    data = {s: examples(s, n, seed=i) for i, s in enumerate(STREAMS)}
    publish(settings, "streams", [config(s, online_every=10_000) for s in STREAMS])
    publish(
        settings, "examples.valid", [ex for i in range(n) for s in STREAMS for ex in (data[s][i],)]
    )
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(
        settings,
        group,
        DRIFTLINE_LEARNER_CHECKPOINT_EVERY="200",
        DRIFTLINE_LEARNER_MAX_POLL_RECORDS="100",
    )
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    registry = Registry.open(settings, relay=False)
    procs = []
    try:
        procs = [start_learner(env, log) for log in logs]
        # both members hold partitions and have checkpointed some of each stream
        wait_for(
            lambda: len(learned(registry, group, valid, 4)) == 4,
            180,
            "every stream checkpointed",
            procs[0],
            logs[0],
        )
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        survivor = procs[1]
        wait_for(
            lambda: learned(registry, group, valid, 4) == {s: n for s in STREAMS},
            240,
            "all streams learned by the survivor",
            survivor,
            logs[1],
        )
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=20) == 0, logs[1].read_text()[-3000:]
        probe = examples("probe", 200, seed=123)
        for cp in checkpoints(registry, group, valid, 4):
            state = cp.state
            assert isinstance(state, PartitionState) and state.duplicates == 0
            for stream, track in state.streams.items():
                assert track.learner.examples_seen == n == len(track.seen)
                reference = StreamLearner(config(stream, online_every=10_000))
                for ex in data[stream]:
                    reference.process(ex.features, ex.label)
                got = track.learner.predictor()
                want = reference.predictor()
                assert [got.predict_proba_one(p.features) for p in probe] == [
                    want.predict_proba_one(p.features) for p in probe
                ], stream
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        registry.close()
