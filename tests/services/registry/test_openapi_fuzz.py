"""schemathesis (``--checks all``) against a real registry process, with the admin token
and without one configured: no server error, every status documented, every response on
its schema, schema-valid requests accepted and invalid ones refused with a 4xx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import Registry
from tests.http.schemathesis_cli import schemathesis
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor

TOKEN = "fuzz-admin-token"  # noqa: S105 - a test token
KEY = private_key_for("test-signing-key-0123456789")
ROOT = Path(__file__).resolve().parents[3]


def start_registry(tmp_path: Path, token: str | None) -> tuple[subprocess.Popen[bytes], str]:
    """A registry process on a fresh SQLite file holding two versions of ``sea`` (the
    name the OpenAPI gives as its example), Kafka unreachable (events stay queued)."""
    env = {
        **os.environ,
        "DRIFTLINE_DATA_DIR": str(tmp_path),
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
        "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "DRIFTLINE_KAFKA_TIMEOUT_S": "1",
    }
    for name in ("DRIFTLINE_REGISTRY_URL", "DRIFTLINE_ARTIFACTS_URL", "DRIFTLINE_ADMIN_TOKEN"):
        env.pop(name, None)
    registry = Registry.open(DriftlineSettings.load(env=env), relay=False)
    for n in (20, 30):
        registry.register_version(model="sea", kind="batch", predictor=predictor(n))
    registry.close()
    (port,) = free_ports(1)
    env["DRIFTLINE_REGISTRY_PORT"] = str(port)
    if token:
        env["DRIFTLINE_ADMIN_TOKEN"] = token
    with open(tmp_path / "registry.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.registry"], cwd=ROOT, env=env, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (tmp_path / "registry.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the registry never answered"
        time.sleep(0.1)


@pytest.fixture(params=["admin-token", "no-admin-token"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    token = TOKEN if request.param == "admin-token" else None
    proc, base = start_registry(tmp_path, token)
    try:
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing(registry_url: str, tmp_path: Path) -> None:
    schemathesis(registry_url, f"Authorization: Bearer {TOKEN}", report=tmp_path / "report")
