"""Shared pieces of the learner's integration tests: a config, data, a process runner."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from river.datasets import synth

from schemas import LabelledExample, StreamConfig
from services.common.settings import DriftlineSettings
from services.learner.checkpoints import partition_key, restore
from services.learner.state import PartitionState
from services.registry.client import Registry
from tests.integration.processes import service_env, start_service
from tests.keys import private_key_for
from tests.streams import AGRAWAL_FEATURES, agrawal_stream

KEY = private_key_for("learner-test-signing-key")
FEATURES = AGRAWAL_FEATURES


def config(
    stream: str, *, online_every: int = 1000, retrain_every: int | None = None
) -> StreamConfig:
    """A published (version 1) config for an Agrawal stream."""
    return agrawal_stream(
        stream,
        version=1,
        pipeline="preprocessing.StandardScaler | linear_model.LogisticRegression",
        policy={
            "online_version_every": online_every,
            "rolling_window": 500,
            "drift": {"data_drift": False},
            "retrain": {"every": retrain_every},
        },
    )


def examples(stream: str, n: int, seed: int) -> list[LabelledExample]:
    """``n`` validated examples of an Agrawal stream, as the validator would emit them."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        LabelledExample(
            stream=stream,
            example_id=str(i),
            features=dict(x),
            label=int(y),
            event_time=t0 + timedelta(seconds=i),
            spec_version=1,
        )
        for i, (x, y) in enumerate(itertools.islice(synth.Agrawal(seed=seed), n))
    ]


def learner_env(settings: DriftlineSettings, group: str, **extra: str) -> dict[str, str]:
    return service_env(
        settings,
        KEY,
        DRIFTLINE_LEARNER_GROUP_ID=group,
        DRIFTLINE_LEARNER_METRICS_PORT="0",
        DRIFTLINE_LEARNER_SESSION_TIMEOUT_MS="6000",
        # every online snapshot when due, however fast the test's replay: these tests pin
        # the version lineage (a cost budget would skip some multiples of K)
        DRIFTLINE_LEARNER_SERIALISE_BUDGET="1",
        # ... on multiples of K only (the default early first version: tests/services/
        # learner/test_state.py, and the demo's tests)
        DRIFTLINE_LEARNER_FIRST_VERSION_AT="0",
        **extra,
    )


def start_learner(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_service("learner", env, log)


@dataclass(frozen=True)
class Restored:
    """What a learner starting now would restore for one partition."""

    key: str
    state: PartitionState

    @property
    def offsets(self) -> dict[str, int]:
        return {str(self.state.partition): self.state.next_offset}

    @property
    def meta(self) -> dict[str, dict[str, int]]:
        return {"streams": {s: t.learner.examples_seen for s, t in self.state.streams.items()}}


def checkpoints(registry: Registry, group: str, topic: str, partitions: int) -> list[Restored]:
    """Each partition's state as the learner restores it from its checkpoints."""
    found = []
    for p in range(partitions):
        key = partition_key(group, topic, p)
        state = restore(registry, key=key, topic=topic, partition=p)
        if state is not None:
            found.append(Restored(key, state))
    return found


def learned(registry: Registry, group: str, topic: str, partitions: int) -> dict[str, int]:
    """Examples learned per stream, as the latest checkpoints say."""
    out: dict[str, int] = {}
    for cp in checkpoints(registry, group, topic, partitions):
        out.update(cp.meta["streams"])
    return out
