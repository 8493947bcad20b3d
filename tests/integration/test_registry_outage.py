"""A registry outage, with real processes on a real broker: the registry service is
stopped while a learner (reaching it over HTTP) learns and serving answers; the learner
keeps learning and puts its writes off, serving keeps serving its loaded champion, and
when the registry is back every write is made once: the checkpoints cover every example,
the versions and moves are each announced on ``models`` under one event id."""

from __future__ import annotations

import re
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from schemas import ModelVersionPublished, Topics
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import Registry
from tests.integration.learner_support import KEY, config, examples, learned, learner_env
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, publish, service_env, start_service
from tests.integration.registry_service import healthy

TOKEN = "outage-test-service-token"  # noqa: S105 - a test token
STREAM = "agr"


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples at a /metrics URL (0 when unreachable or absent)."""
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return 0.0
    pattern = rf"^driftline_{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"
    return sum(float(v) for v in re.findall(pattern, text, flags=re.M))


# also on PostgreSQL (make test-registry-http)
@pytest.mark.registry_http
def test_learner_and_serving_ride_out_a_registry_outage(
    settings_factory: Callable[..., DriftlineSettings],
    registry_database: str | None,
    tmp_path: Path,
) -> None:
    # its own registry processes, on the database of this run's backend
    settings = settings_factory(
        signing_key=KEY, signing_key_id="k1", registry_url=registry_database
    )
    registry_port, learner_port, serving_port = free_ports(3)
    api = f"http://127.0.0.1:{registry_port}"
    over_http = {"DRIFTLINE_REGISTRY_URL": api, "DRIFTLINE_SERVICE_TOKEN": TOKEN}
    registry_env = service_env(
        settings,
        KEY,
        DRIFTLINE_REGISTRY_PORT=str(registry_port),
        DRIFTLINE_SERVICE_TOKEN=TOKEN,
        DRIFTLINE_REGISTRY_RELAY_INTERVAL_S="0.5",
    )
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S="0.2") | {
        "DRIFTLINE_LEARNER_METRICS_PORT": str(learner_port),
        **over_http,
    }
    serving = service_env(
        settings,
        KEY,
        DRIFTLINE_SERVING_PORT=str(serving_port),
        DRIFTLINE_SERVING_SESSION_TIMEOUT_MS="6000",
        **over_http,
    )
    learner_metrics = f"http://127.0.0.1:{learner_port}/metrics"
    valid = Topics(settings.topic_prefix).name("examples.valid")
    data = examples(STREAM, 2000, seed=5)
    rows = {"instances": [dict(data[0].features)]}
    logs = {name: tmp_path / f"{name}.log" for name in ("registry", "learner", "serving")}
    db = Registry.open(settings, relay=False)  # the test reads the tables directly
    models = TopicReader(settings, "models")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    client = httpx.Client(base_url=f"http://127.0.0.1:{serving_port}", timeout=5)

    def served() -> int | None:
        try:
            answer = client.post(f"/models/{STREAM}/predict", json=rows)
        except httpx.TransportError:
            return None
        return answer.json()["version"] if answer.status_code == 200 else None

    try:
        procs["registry"] = start_service("registry", registry_env, logs["registry"])
        wait_for(lambda: healthy(api), 60, "the registry", procs["registry"], logs["registry"])
        procs["learner"] = start_service("learner", env, logs["learner"])
        procs["serving"] = start_service("serving", serving, logs["serving"])
        publish(settings, "streams", [config(STREAM, online_every=200)])
        publish(settings, "examples.valid", data[:1000])
        wait_for(
            lambda: learned(db, group, valid, 4).get(STREAM) == 1000,
            120,
            "the first 1000 examples checkpointed",
            list(procs.values()),
            logs["learner"],
        )
        wait_for(lambda: served() is not None, 60, "serving a champion", procs["serving"])

        # the outage: the registry stops; examples keep coming
        procs["registry"].send_signal(signal.SIGTERM)
        assert procs["registry"].wait(timeout=20) == 0
        before = metric(learner_metrics, "learner_examples_total")
        publish(settings, "examples.valid", data[1000:])
        wait_for(
            lambda: metric(learner_metrics, "learner_examples_total") >= before + 1000,
            60,
            "the learner to learn the 1000 examples sent during the outage",
            procs["learner"],
            logs["learner"],
        )
        wait_for(
            lambda: metric(learner_metrics, "learner_registry_deferred_total") >= 2,
            30,
            "the learner to put writes off",
            procs["learner"],
            logs["learner"],
        )
        assert learned(db, group, valid, 4).get(STREAM) < 2000  # nothing written meanwhile
        answers = [served() for _ in range(5)]
        assert all(v is not None for v in answers), answers  # serving keeps serving

        # back: the deferred checkpoint and version are written, once
        procs["registry"] = start_service("registry", registry_env, logs["registry"])
        wait_for(
            lambda: learned(db, group, valid, 4).get(STREAM) == 2000,
            90,
            "every example checkpointed after the registry came back",
            list(procs.values()),
            logs["learner"],
        )
        info = db.get_model(name=STREAM)
        assert info is not None
        newest = db.list_versions(model=STREAM, limit=1)[0].version
        wait_for(
            lambda: (
                db.get_alias(model=STREAM, alias="online") == newest and db.outbox_backlog() == 0
            ),
            60,
            "the newest version aliased and every event relayed",
            procs["registry"],
            logs["registry"],
        )
        versions = db.list_versions(model=STREAM)
        assert [v.version for v in versions] == list(range(len(versions), 0, -1))
        moves = db.alias_history(model=STREAM)
        wait_for(
            lambda: len({e.event_id for e in models.poll()}) == len(versions) + len(moves),
            30,
            "each version and move on the models topic",
        )
        # nothing twice: one event id per version and per move (a re-sent event keeps its
        # id, and consumers de-duplicate by it), and nothing lost
        published = {
            e.event_id: e.version for e in models.events if isinstance(e, ModelVersionPublished)
        }
        assert sorted(published.values()) == sorted(v.version for v in versions)
        ids = {str(e.event_id) for e in models.events}
        assert ids == {m.event_id for m in moves} | {str(i) for i in published}
        wait_for(
            lambda: served() == db.get_alias(model=STREAM, alias="champion"),
            60,
            "serving the champion after the outage",
            procs["serving"],
            logs["serving"],
        )
    finally:
        client.close()
        models.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        db.close()
