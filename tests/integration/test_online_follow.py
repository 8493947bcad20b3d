"""Online followers on the real broker: a follower learns exactly what the learner learns
(skipping a duplicate, a nonconforming row and another stream's rows as it does), and
serving answers with a model that has learned rows published after the last snapshot,
resynchronises on a new snapshot and resumes following after kill -9."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import StreamConfig, Topics
from services.common.kafka_client import canonical_partition
from services.common.online_follow import FollowPoint
from services.common.online_follower import OnlineFollower
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import Registry
from tests.integration.learner_support import (
    FEATURES,
    KEY,
    checkpoints,
    config,
    examples,
    learned,
    learner_env,
    start_learner,
)
from tests.integration.polling import wait_for
from tests.integration.processes import publish, service_env, start_service

PARTITIONS = 4  # the catalogue's examples.valid


def arf_config(stream: str, online_every: int) -> StreamConfig:
    """An Agrawal stream learned by a scaler and an adaptive random forest."""
    base = config(stream, online_every=online_every)
    return StreamConfig.model_validate(
        base.model_dump(mode="json")
        | {"model": {"pipeline": "preprocessing.StandardScaler | forest.ARFClassifier"}}
    )


def neighbour(stream: str) -> str:
    """Another stream name on the same canonical partition of examples.valid."""
    mine = canonical_partition(stream.encode(), PARTITIONS)
    return next(
        name
        for name in (f"{stream}-other-{i}" for i in range(1000))
        if canonical_partition(name.encode(), PARTITIONS) == mine
    )


def probes() -> list[dict[str, Any]]:
    return [dict(e.features) for e in examples("probe", 100, seed=99)]


# also with the registry reached over HTTP, on SQLite and PostgreSQL (make test)
@pytest.mark.registry_http
def test_a_follower_predicts_exactly_like_the_learner(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    stream = f"fol-{uuid.uuid4().hex[:6]}"
    cfg = arf_config(stream, online_every=200)
    data = examples(stream, 400, seed=3)
    duplicate = data[250]  # re-emitted after the snapshot: learned once
    broken = data[260].model_copy(update={"label": 7, "example_id": "broken"})  # not a class
    other = data[270].model_copy(update={"stream": neighbour(stream), "example_id": "x"})
    stream_rows = [*data[:300], duplicate, broken, other, *data[300:]]
    publish(settings, "streams", [cfg])
    publish(settings, "examples.valid", stream_rows)
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_EVERY="100")
    log = tmp_path / "learner.log"
    valid = Topics(settings.topic_prefix).name("examples.valid")
    registry = Registry.open(settings, relay=False)
    try:
        proc = start_learner(env, log)
        wait_for(
            lambda: learned(registry, group, valid, PARTITIONS).get(stream) == 400,
            120,
            "the learner to learn every example",
            proc,
            log,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
        (cp,) = [
            c for c in checkpoints(registry, group, valid, PARTITIONS) if stream in c.state.streams
        ]
        track = cp.state.streams[stream]
        assert track.duplicates == 1
        learner = track.learner.predictor()

        first = registry.get_version(model=stream, version=1)
        assert first is not None and first.lineage.example_count == 200
        snapshot = registry.load_predictor(model=stream, version=1)
        point = snapshot.follow
        assert isinstance(point, FollowPoint)
        assert (point.example_count, point.partition, len(point.ids)) == (
            200,
            canonical_partition(stream.encode(), PARTITIONS),
            200,
        )
        follower = OnlineFollower(settings, snapshot, version=1)
        try:
            assert follower.catch_up(60)
            assert follower.twin.examples == track.learner.examples_seen == 400
            assert follower.rules.skipped == {"duplicate": 1, "nonconforming": 1}
            rows = probes()
            assert follower.predictor.predict_proba_many(rows) == learner.predict_proba_many(rows)
            assert follower.predictor.predict_many(rows) == learner.predict_many(rows)
            assert follower.predictor.following() == {"base_version": 1, "learned_examples": 400}
        finally:
            follower.stop()
    finally:
        registry.close()


def _champion(registry: Registry, model: str) -> int | None:
    info = registry.get_model(name=model)
    return None if info is None else info.aliases.get("champion")


def _metric(client: httpx.Client, name: str) -> float:
    """The sum of a metric's samples on serving's ``/metrics``."""
    text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{"))
    )


def _infer(client: httpx.Client, model: str) -> dict[str, Any] | None:
    row = dict(examples("probe", 1, seed=5)[0].features)
    body = {
        "inputs": [
            {"name": f, "shape": [1], "datatype": "FP64", "data": [float(row[f])]} for f in FEATURES
        ]
    }
    try:
        answer = client.post(f"/v2/models/{model}/infer", json=body)
    except httpx.TransportError:
        return None
    if answer.status_code != 200:
        return None
    parameters: dict[str, Any] = answer.json()["parameters"]
    return parameters


def test_serving_follows_resyncs_and_resumes_after_kill_9(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    stream = f"srv-{uuid.uuid4().hex[:6]}"
    publish(settings, "streams", [config(stream, online_every=500)])
    data = examples(stream, 1200, seed=11)
    group = f"g-{uuid.uuid4().hex[:8]}"
    learner_log, serving_log = tmp_path / "learner.log", tmp_path / "serving.log"
    (port,) = free_ports(1)
    serving = service_env(
        settings,
        KEY,
        DRIFTLINE_SERVING_PORT=str(port),
        DRIFTLINE_SERVING_KAFKA="false",
        DRIFTLINE_SERVING_SHADOW="false",
        DRIFTLINE_SERVING_REPLICA_ID=f"r-{uuid.uuid4().hex[:6]}",
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    learner = start_learner(learner_env(settings, group), learner_log)
    procs = [learner]

    def answers(base: int, count: int) -> Callable[[], bool]:
        def check() -> bool:
            got = _infer(client, stream)
            return got is not None and (got["base_version"], got["learned_examples"]) == (
                base,
                count,
            )

        return check

    try:
        publish(settings, "examples.valid", data[:600])  # v1 at 500 becomes champion
        registry = Registry.open(settings, relay=False)
        try:
            wait_for(
                lambda: _champion(registry, stream) == 1, 120, "v1 champion", procs, learner_log
            )
        finally:
            registry.close()
        procs.append(start_service("serving", serving, serving_log))
        first: list[dict[str, Any]] = []

        def answered() -> bool:
            got = _infer(client, stream)
            if got is not None:
                first.append(got)
            return got is not None

        wait_for(answered, 120, "serving to answer", procs, serving_log)
        # it opens once its follower has caught up: never an answer from the bare snapshot
        assert (first[0]["base_version"], first[0]["learned_examples"]) == (1, 600)

        # v2 at 1000 reaches serving after its follower passed 1000 (the learner is stopped
        # while serving follows on its own), so the running follower takes v2 as its base
        learner.send_signal(signal.SIGTERM)
        assert learner.wait(timeout=30) == 0, learner_log.read_text()[-3000:]
        publish(settings, "examples.valid", data[600:1100])
        wait_for(answers(1, 1100), 120, "serving following alone to 1100", procs[1:], serving_log)
        learner = procs[0] = start_learner(learner_env(settings, group), learner_log)
        wait_for(answers(2, 1100), 120, "v2 taken as the base at 1100", procs, serving_log)
        # one follower loaded, none since: v2 was a rebase, not a catch-up
        assert _metric(client, "driftline_serving_online_resyncs_total") == 1.0

        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=30)
        publish(settings, "examples.valid", data[1100:1150])  # while serving is down
        procs[1] = start_service("serving", serving, serving_log)
        wait_for(answers(2, 1150), 120, "following again after kill -9", procs, serving_log)
        publish(settings, "examples.valid", data[1150:])
        wait_for(answers(2, 1200), 60, "the last rows followed", procs, serving_log)
        history = client.get("/models").json()["history"]
        loads = [h["version"] for h in history if h["model"] == stream and h["event"] == "loaded"]
        assert loads == [2]  # the restarted replica's one load, recorded as it was loaded
        assert "Traceback" not in serving_log.read_text()
    finally:
        client.close()
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except Exception:  # noqa: BLE001 - kill what did not stop
                    proc.kill()
