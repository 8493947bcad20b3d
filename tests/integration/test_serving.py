"""The serving process end to end on the real broker: versions published by the registry,
champion moved, the server answers with the new version without a failed request; the
Kafka path, shadow pairs, acknowledgements, a tampered artifact, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import (
    CATALOGUE,
    DeadLetter,
    Event,
    FeatureSpec,
    ModelLoaded,
    ModelLoadFailed,
    Prediction,
    PredictionRequest,
    ShadowPair,
    StreamConfig,
    Topics,
)
from services.common.codec import decode, encode
from services.common.kafka_client import assign_all, make_consumer, make_producer
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import Registry
from tests.integration.polling import wait_for
from tests.integration.serving_support import (
    SPEC,
    move,
    register,
    sea_rows,
    serving_env,
    signed,
    start_serving,
    tamper,
)

ROWS = [x for x, _ in sea_rows(20, seed=11)]


class Topic:
    """Everything on one topic so far, read incrementally."""

    def __init__(self, settings: DriftlineSettings, suffix: str) -> None:
        self.spec = CATALOGUE[suffix]
        self.consumer = make_consumer(settings, group_id=None)
        assign_all(self.consumer, Topics(settings.topic_prefix).name(suffix))
        self.events: list[Event] = []

    def read(self) -> list[Event]:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.events += [decode(r.value, self.spec) for r in records]
        return self.events

    def close(self) -> None:
        self.consumer.close()


def answered_by(client: httpx.Client, version: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            answer = client.post("/models/sea/predict", json={"instances": ROWS[:1]})
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and answer.json()["version"] == version

    return check


class Load:
    """A thread sending predict requests without pause; records every outcome."""

    def __init__(self, port: int) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self.outcomes: list[tuple[int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = self.client.post("/models/sea/predict", json={"instances": ROWS})
            version = answer.json().get("version") if answer.status_code == 200 else None
            self.outcomes.append((answer.status_code, version))


# also with the registry reached over HTTP, on SQLite and PostgreSQL (make test)
@pytest.mark.registry_http
def test_serving_process_end_to_end(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = signed(settings_factory)
    (port,) = free_ports(1)
    log = tmp_path / "serving.log"
    replica = f"replica-{uuid.uuid4().hex[:6]}"
    env = serving_env(
        settings,
        port,
        DRIFTLINE_SERVING_REPLICA_ID=replica,
        DRIFTLINE_SERVING_GROUP_ID=f"g-{uuid.uuid4().hex[:8]}",
    )
    registry = Registry.open(settings)
    proc = start_serving(env, log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    acks, predictions, shadow, dead = (
        Topic(settings, s) for s in ("models.acks", "predictions", "shadow", "events.dead")
    )
    try:

        def status(path: str) -> int:
            try:
                return client.get(path).status_code
            except httpx.TransportError:
                return 0

        wait_for(lambda: status("/healthz") == 200, 60, "the HTTP server", proc, log)
        assert status("/readyz") == 503
        assert client.post("/models/sea/predict", json={"instances": ROWS}).status_code in (
            404,
            503,
        )

        v1 = register(registry, "sea", 1)
        move(registry, "sea", "champion", v1)
        wait_for(answered_by(client, v1), 30, "v1 served", proc, log)
        assert status("/readyz") == 200

        # Champion moves under load: answered by the new version, no request fails.
        v2 = register(registry, "sea", 2)
        with Load(port) as load:
            wait_for(lambda: len(load.outcomes) >= 20, 30, "load running", proc, log)
            move(registry, "sea", "champion", v2)
            wait_for(lambda: (200, v2) in load.outcomes[-5:], 30, "v2 under load", proc, log)
        assert {code for code, _ in load.outcomes} == {200}
        assert {version for _, version in load.outcomes} == {v1, v2}
        first_v2 = load.outcomes.index((200, v2))
        assert all(v == v2 for _, v in load.outcomes[first_v2:])  # never back to v1

        # A challenger is shadowed; the Kafka path answers with the champion.
        v3 = register(registry, "sea", 3)
        move(registry, "sea", "challenger", v3)
        wait_for(
            lambda: (
                client.get("/models").json()["models"]["sea"]["loaded"].get("challenger")
                is not None
            ),
            30,
            "challenger loaded",
            proc,
            log,
        )
        requests = [
            PredictionRequest(stream="sea", example_id=f"e{i}", features=x)
            for i, x in enumerate(ROWS)
        ]
        producer = make_producer(settings)
        topic = Topics(settings.topic_prefix).name("predictions.requests")
        for request in requests:
            producer.send(topic, key=b"sea", value=encode(request))
        producer.send(topic, key=b"sea", value=b"{not json")
        bad = PredictionRequest(stream="sea", example_id="bad", features={"x0": 1.0})
        producer.send(topic, key=b"sea", value=encode(bad))
        producer.flush()
        producer.close()
        wait_for(lambda: len(predictions.read()) >= len(requests), 60, "predictions", proc, log)
        got = [e for e in predictions.events if isinstance(e, Prediction)]
        assert sorted(p.example_id for p in got) == sorted(r.example_id for r in requests)
        assert {p.answer.version for p in got} == {v2}
        by_id = {p.example_id: p for p in got}
        expected = registry.load_predictor(model="sea", version=v2).predict_many(ROWS)
        assert [by_id[f"e{i}"].answer.prediction for i in range(len(ROWS))] == expected
        assert {p.request_event_id for p in got} == {r.event_id for r in requests}
        wait_for(lambda: len(shadow.read()) >= len(requests), 60, "shadow pairs", proc, log)
        pairs = [e for e in shadow.events if isinstance(e, ShadowPair)]
        assert {(p.champion.version, p.challenger.version) for p in pairs} == {(v2, v3)}
        wait_for(lambda: len(dead.read()) >= 2, 60, "dead letters", proc, log)
        reasons = sorted(str(e.reason) for e in dead.events if isinstance(e, DeadLetter))
        assert reasons == ["missing_feature", "unparseable"]

        # A tampered artifact is refused, acknowledged as such, and v2 keeps serving.
        v4 = register(registry, "sea", 4)
        tamper(registry, "sea", v4)
        move(registry, "sea", "champion", v4)

        def refused() -> bool:
            return any(isinstance(e, ModelLoadFailed) and e.version == v4 for e in acks.read())

        wait_for(refused, 30, "the refusal ack", proc, log)
        assert answered_by(client, v2)()
        loaded = sorted((e.version, e.alias) for e in acks.events if isinstance(e, ModelLoaded))
        assert loaded == [(v1, "champion"), (v2, "champion"), (v3, "challenger")]
        assert {e.replica_id for e in acks.events} == {replica}
        failure: Any = next(e for e in acks.events if isinstance(e, ModelLoadFailed))
        assert failure.reason == "sha256_mismatch" and failure.alias == "champion"
        metrics = client.get("/metrics").text
        assert 'driftline_serving_model_version{alias="champion",model="sea"} 2.0' in metrics
        assert 'driftline_serving_load_failures_total{model="sea",reason="sha256_mismatch"}' in (
            metrics
        )

        # The stream's spec changes (x2 becomes a category): a model using x2 as a number
        # is incompatible and refused; v2 keeps serving.
        spec = SPEC.model_copy(
            update={
                "features": (
                    *SPEC.features[:2],
                    FeatureSpec(name="x2", type="category", categories=("a", "b")),
                )
            }
        )
        producer = make_producer(settings)
        config = StreamConfig(stream="sea", version=2, spec=spec)
        producer.send(
            Topics(settings.topic_prefix).name("streams"), key=b"sea", value=encode(config)
        )
        producer.flush()
        producer.close()
        wait_for(
            lambda: client.get("/models").json()["specs"].get("sea") == 2,
            30,
            "the new spec applied",
            proc,
            log,
        )
        v5 = register(registry, "sea", 5)
        move(registry, "sea", "champion", v5)

        def incompatible() -> bool:
            return any(isinstance(e, ModelLoadFailed) and e.version == v5 for e in acks.read())

        wait_for(incompatible, 30, "the incompatible-spec refusal", proc, log)
        refusal: Any = next(
            e for e in acks.events if isinstance(e, ModelLoadFailed) and e.version == v5
        )
        assert refusal.reason == "incompatible_spec" and "'x2' is category" in refusal.detail
        assert answered_by(client, v2)()

        # `driftline models fleet` shows what this replica serves, from models.acks
        fleet = subprocess.run(
            [sys.executable, "-m", "services.cli.main", "models", "fleet", "--json"],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        rows = {r["alias"]: r for r in json.loads(fleet.stdout)}
        assert set(rows) == {"champion", "challenger"}  # one row per alias it serves
        row = rows["champion"]
        assert (row["replica"], row["model"], row["status"]) == (replica, "sea", "failing")
        assert row["last_failure"]["version"] == v5

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
        for t in (acks, predictions, shadow, dead):
            t.close()
        registry.close()
