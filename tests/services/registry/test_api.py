"""The registry's HTTP API on SQLite and PostgreSQL, and its server process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas import AliasReason, Lineage, OffsetRange
from services.common import artifacts
from services.common.metrics import Metrics
from services.common.signing import Signature, artifact_subject
from services.localbroker.ports import free_ports
from services.registry.api import create_app
from services.registry.client import Registry
from services.registry.errors import FrozenModel
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package and warns when it falls back on httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "s3cret-admin-token"  # noqa: S105 - a test token
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[3]


def client(registry: Registry, token: str | None = TOKEN) -> TestClient:
    return TestClient(create_app(registry, admin_token=token, metrics=Metrics("registry")))


@pytest.fixture
def http(registry: Registry) -> Iterator[TestClient]:
    """A client of the API over a registry with two versions of ``sea``."""
    lineage = Lineage(
        ranges=(OffsetRange(topic="t.examples.valid", partition=0, start=10, end=110),),
        example_count=100,
    )
    registry.register_version(
        model="sea",
        kind="online",
        predictor=predictor(),
        metrics={"accuracy": 0.8},
        lineage=lineage,
    )
    registry.register_version(model="sea", kind="batch", predictor=predictor(30))
    with client(registry) as c:
        yield c


def test_reads(http: TestClient, registry: Registry) -> None:
    assert [m["name"] for m in http.get("/models").json()] == ["sea"]
    model = http.get("/models/sea").json()
    assert model == {
        "name": "sea",
        "latest_version": 2,
        "frozen": False,
        "frozen_reason": None,
        "aliases": {},
    }
    assert [v["version"] for v in http.get("/models/sea/versions").json()] == [2, 1]
    assert [v["version"] for v in http.get("/models/sea/versions?limit=1").json()] == [2]
    one = http.get("/models/sea/versions/1").json()
    assert one["lineage"]["ranges"] == [
        {"topic": "t.examples.valid", "partition": 0, "start": 10, "end": 110}
    ]
    assert one["metrics"] == {"accuracy": 0.8} and one["artifact"]["key_id"] == "k1"
    assert http.get("/models/sea/aliases/champion/history").json() == []

    run, _ = registry.start_run(model="sea", trigger_event_id="drift-1")
    registry.add_candidate(run_id=run.id, name="rf", params={}, metrics={"f1": 0.5}, fit_s=0.1)
    assert [r["id"] for r in http.get("/runs", params={"model": "sea"}).json()] == [run.id]
    assert http.get("/runs", params={"model": "other"}).json() == []
    got = http.get(f"/runs/{run.id}").json()
    assert got["candidates"][0]["name"] == "rf" and got["status"] == "running"
    assert http.get("/healthz").json() == {"status": "ok", "outbox_backlog": 2}


@pytest.mark.parametrize(
    "path",
    [
        "/models/nope",
        "/models/nope/versions",
        "/models/sea/versions/9",
        "/models/nope/aliases/champion/history",
        "/runs/nope",
    ],
)
def test_unknown_is_404(http: TestClient, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert "nope" in response.json()["detail"] or "v9" in response.json()["detail"]


def test_artifact_download(http: TestClient, registry: Registry) -> None:
    version = registry.get_version(model="sea", version=1)
    assert version is not None
    sha = version.artifact.sha256
    response = http.get(f"/artifacts/{sha}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(response.content).hexdigest() == sha
    assert response.headers["X-Driftline-Signature"] == version.artifact.signature
    assert response.headers["X-Driftline-Key-Id"] == "k1"
    # what an SDK user does: verify with the headers, then load
    expected = Signature(
        sha, response.headers["X-Driftline-Signature"], response.headers["X-Driftline-Key-Id"]
    )
    subject = artifact_subject(version.model, version.version)
    _header, loaded = artifacts.load(response.content, expected, registry.keyring, subject)
    assert loaded.predict_many([{"x": 0.0}, {"x": 1.0}]) == [False, True]


@pytest.mark.parametrize(
    "sha",
    ["0" * 64, "not-a-sha", "../../etc/passwd", "A" * 64, "f" * 65, "%00"],
)
def test_bad_or_unknown_artifact_is_404(http: TestClient, sha: str) -> None:
    response = http.get(f"/artifacts/{sha}")
    assert response.status_code == 404, response.text
    assert response.json()["detail"]


def test_promote_is_compare_and_set(http: TestClient, registry: Registry) -> None:
    first = http.post(
        "/models/sea/promote", json={"version": 1, "expect": None, "reason": "go"}, headers=ADMIN
    )
    assert first.status_code == 200, first.text
    move = first.json()
    assert (move["from_version"], move["to_version"], move["reason"]) == (None, 1, "manual")
    assert move["evidence"] == {"operation": "promote", "note": "go"}
    assert registry.get_alias(model="sea", alias="champion") == 1

    second = http.post("/models/sea/promote", json={"version": 2, "expect": 1}, headers=ADMIN)
    assert second.status_code == 200
    stale = http.post("/models/sea/promote", json={"version": 1, "expect": 1}, headers=ADMIN)
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2 and "is at v2" in stale.json()["detail"]
    assert registry.get_alias(model="sea", alias="champion") == 2

    history = http.get("/models/sea/aliases/champion/history").json()
    assert [(h["from_version"], h["to_version"]) for h in history] == [(1, 2), (None, 1)]

    back = http.post("/models/sea/rollback", json={"expect": 2}, headers=ADMIN)
    assert back.status_code == 200 and back.json()["to_version"] == 1
    assert back.json()["evidence"]["operation"] == "rollback"
    assert http.get("/models/sea").json()["aliases"] == {"champion": 1}
    # each move queued its AliasMoved event for the relay (plus two versions)
    assert registry.outbox_backlog() == 5


def test_promote_to_another_alias_and_unknowns(http: TestClient) -> None:
    ok = http.post(
        "/models/sea/promote",
        json={"version": 2, "alias": "challenger", "expect": None},
        headers=ADMIN,
    )
    assert ok.status_code == 200 and ok.json()["alias"] == "challenger"
    missing = http.post("/models/sea/promote", json={"version": 9, "expect": None}, headers=ADMIN)
    assert missing.status_code == 404
    nobody = http.post("/models/nope/promote", json={"version": 1, "expect": None}, headers=ADMIN)
    assert nobody.status_code == 404
    unset = http.post("/models/sea/rollback", json={"expect": None}, headers=ADMIN)
    assert unset.status_code == 404 and "no earlier version" in unset.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1},  # expect is required: a move must say what it replaces
        {"version": 0, "expect": None},
        {"version": "one", "expect": None},
        {"version": 1, "expect": None, "alias": "bad alias!"},
        {"version": 1, "expect": None, "surprise": True},
    ],
)
def test_bad_body_is_422(http: TestClient, body: dict[str, object]) -> None:
    response = http.post("/models/sea/promote", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text


def test_no_admin_token_configured_refuses(registry: Registry) -> None:
    registry.register_version(model="sea", kind="online", predictor=predictor())
    with client(registry, token=None) as c:
        for path, body in [
            ("/models/sea/promote", {"version": 1, "expect": None}),
            ("/models/sea/rollback", {"expect": 1}),
            ("/models/sea/freeze", {"reason": "x"}),
            ("/models/sea/unfreeze", {}),
        ]:
            response = c.post(path, json=body, headers=ADMIN)
            assert response.status_code == 403, path
            assert "DRIFTLINE_ADMIN_TOKEN" in response.json()["detail"]
    assert registry.get_alias(model="sea", alias="champion") is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
def test_wrong_or_missing_token_is_401(http: TestClient, headers: dict[str, str]) -> None:
    response = http.post(
        "/models/sea/promote", json={"version": 1, "expect": None}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert http.get("/models/sea").json()["aliases"] == {}


def test_freeze_stops_automatic_moves(http: TestClient, registry: Registry) -> None:
    frozen = http.post("/models/sea/freeze", json={"reason": "audit"}, headers=ADMIN)
    assert frozen.status_code == 200
    assert (frozen.json()["frozen"], frozen.json()["frozen_reason"]) == (True, "audit")
    with pytest.raises(FrozenModel, match="audit"):
        registry.move_alias(
            model="sea",
            alias="champion",
            to_version=2,
            expect=None,
            reason=AliasReason.PROMOTED,
            actor="trainer",
        )
    # a person can still move it
    manual = http.post("/models/sea/promote", json={"version": 1, "expect": None}, headers=ADMIN)
    assert manual.status_code == 200
    thawed = http.post("/models/sea/unfreeze", headers=ADMIN)
    assert thawed.status_code == 200 and thawed.json()["frozen"] is False
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=2,
        expect=1,
        reason=AliasReason.PROMOTED,
        actor="trainer",
    )
    assert http.post("/models/nope/freeze", headers=ADMIN).status_code == 404


def test_openapi_and_metrics(http: TestClient) -> None:
    schema = http.get("/openapi.json").json()
    assert schema["info"]["title"] == "driftline registry"
    assert {"/models", "/models/{name}/promote", "/artifacts/{sha256}"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    promote = schema["paths"]["/models/{name}/promote"]["post"]
    assert {"401", "403", "409", "422"} <= set(promote["responses"])

    http.get("/models/nope")
    http.post("/models/sea/promote", json={"version": 1, "expect": None})
    text = http.get("/metrics").text
    assert (
        'driftline_registry_http_requests_total{method="GET",route="/models/{name}",status="404"}'
        " 1.0" in text
    )
    assert (
        'driftline_registry_http_refusals_total{reason="unauthorized",'
        'route="/models/{name}/promote"} 1.0' in text
    )
    assert "driftline_registry_outbox_backlog 2.0" in text


# -- the server process -------------------------------------------------------------------


def test_server_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``python -m services.registry``: serves with Kafka unreachable, exits 0 on SIGTERM."""
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "DRIFTLINE_DATA_DIR": str(tmp_path),
        "DRIFTLINE_SIGNING_KEY": private_key_for("test-signing-key-0123456789"),
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
        "DRIFTLINE_ADMIN_TOKEN": TOKEN,
        "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "DRIFTLINE_KAFKA_TIMEOUT_S": "1",
        "DRIFTLINE_REGISTRY_PORT": str(port),
        "DRIFTLINE_REGISTRY_RELAY_INTERVAL_S": "0.5",
    }
    env.pop("DRIFTLINE_REGISTRY_URL", None)
    env.pop("DRIFTLINE_ARTIFACTS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.registry"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=base, timeout=5) as web:
            while True:
                try:
                    health = web.get("/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.communicate()[0]
                    assert time.monotonic() < deadline, "the registry never answered"
                    time.sleep(0.1)
            assert health.json() == {"status": "ok", "outbox_backlog": 0}
            refused = web.post("/models/sea/freeze", headers=ADMIN)
            assert refused.status_code == 404
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, output
        assert time.monotonic() - started < 10
        assert "registry API on http://127.0.0.1" in output and "registry stopped" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_server_bad_setting_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "DRIFTLINE_DATA_DIR": str(tmp_path), "DRIFTLINE_REGISTRY_PORT": "http"}
    done = subprocess.run(
        [sys.executable, "-m", "services.registry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "DRIFTLINE_REGISTRY_PORT" in done.stderr


# -- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"version": 1, "expect": null, "reason": "\\ud800"}',
        b"\xff\xfe",
    ],
)
def test_the_token_is_checked_before_the_body(http: TestClient, body: bytes) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = http.post(
            "/models/sea/promote",
            content=body,
            headers=headers | {"content-type": "application/json"},
        )
        assert answer.status_code == 401, answer.text
    accepted = http.post(
        "/models/sea/promote", content=body, headers=ADMIN | {"content-type": "application/json"}
    )
    assert accepted.status_code == 422 and set(accepted.json()) >= {"error", "detail"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"version": 18446744073709551617, "expect": null}',
        b'{"version": 2147483648, "expect": null}',
        b'{"version": NaN, "expect": null}',
        b'{"version": 1, "expect": Infinity}',
        b'{"version": 1e400, "expect": null}',
        b'{"version": 1, "expect": null, "reason": "a\\u0000b"}',
        b'{"version": 1, "expect": null, "reason": "\\udcff"}',
    ],
)
def test_unbounded_numbers_and_bad_text_are_422(http: TestClient, body: bytes) -> None:
    answer = http.post(
        "/models/sea/promote", content=body, headers=ADMIN | {"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert http.get("/models/sea/versions/18446744073709551617").status_code == 422
    assert http.get("/models/sea").json()["aliases"] == {}


def test_large_bodies_are_413_and_errors_quote_short_excerpts(registry: Registry) -> None:
    app = create_app(registry, admin_token=TOKEN, metrics=Metrics("r"), max_body_bytes=50_000)
    with TestClient(app) as c:
        big = c.post("/models/sea/freeze", json={"reason": "x" * 60_000}, headers=ADMIN)
        assert big.status_code == 413 and "error" in big.json()
        long = c.post("/models/sea/freeze", json={"reason": "y" * 40_000}, headers=ADMIN)
        assert long.status_code == 422 and len(long.content) < 2000, len(long.content)


def test_docs_are_served_from_installed_assets(http: TestClient) -> None:
    html = http.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in html and "cdn" not in html
    assert "/docs-assets/redoc.standalone.js" in http.get("/redoc").text
    assert http.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
