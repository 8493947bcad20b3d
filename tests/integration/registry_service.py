"""The registry reached over HTTP in integration tests.

``DRIFTLINE_TEST_REGISTRY`` picks where the services of a test find the registry:

- ``http-sqlite`` (the default) / ``http-postgresql``: a real registry service process
  (``python -m services.registry``) on a fresh database of that backend, and the services
  handed its ``http://`` URL and a service token, as the demo and compose do;
- ``in-process``: a SQLAlchemy URL, the registry's database opened in each process (the
  layout before the registry had its own API; for tracking a failure down).

``make test`` runs the whole suite in the default mode, then the tests marked
``registry_http`` again on PostgreSQL (``make test-registry-http``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from tests.integration.polling import wait_for
from tests.postgres import PostgresServer

MODES = ("http-sqlite", "http-postgresql", "in-process")
DEFAULT_MODE = "http-sqlite"
SERVICE_TOKEN = "integration-test-service-token"  # noqa: S105 - a test token
START_S = 120.0  # a loaded machine imports the registry slowly
STOP_S = 30.0


def registry_mode() -> str | None:
    """The HTTP mode of this run (None: the in-process store)."""
    mode = os.environ.get("DRIFTLINE_TEST_REGISTRY") or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"DRIFTLINE_TEST_REGISTRY={mode!r}: expected one of {MODES} or unset")
    return None if mode == "in-process" else mode


def fresh_database(request: pytest.FixtureRequest, mode: str, home: Path) -> str:
    """A fresh registry database for ``mode``: a SQLite file in ``home``, or a database
    on the session's PostgreSQL server."""
    if mode == "http-sqlite":
        return f"sqlite:///{home / 'registry.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class RegistryServices:
    """Registry service processes of one test, each on its own database; stopped by
    :meth:`stop_all` (SIGTERM, then the exit code is checked)."""

    def __init__(self, tmp_path: Path, database: Callable[[Path], str]) -> None:
        self.tmp_path = tmp_path
        self.database = database  # a fresh database URL for a process (its dir given)
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, settings: DriftlineSettings) -> dict[str, object]:
        """Start a registry for ``settings`` (broker, prefix, signing key); returns the
        overrides that point a service at it."""
        assert settings.signing_key is not None  # noqa: S101 - the caller checked
        n = len(self.procs)
        home = self.tmp_path / f"registry-service-{n}"
        home.mkdir()
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_KAFKA_CLIENT": settings.kafka_client,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(home),
            "DRIFTLINE_REGISTRY_URL": self.database(home),
            "DRIFTLINE_SIGNING_KEY": settings.signing_key.get_secret_value(),
            "DRIFTLINE_SIGNING_KEY_ID": settings.signing_key_id or "k1",
            "DRIFTLINE_SERVICE_TOKEN": SERVICE_TOKEN,
            "DRIFTLINE_REGISTRY_HOST": "127.0.0.1",
            "DRIFTLINE_REGISTRY_PORT": str(port),
            "PYTHONPATH": str(Path.cwd()),
        }
        if settings.verify_keys is not None:
            env["DRIFTLINE_VERIFY_KEYS"] = settings.verify_keys.get_secret_value()
        log = home / "registry.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.registry"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.procs.append((proc, log))
        wait_for(lambda: healthy(url), START_S, f"the registry service at {url}", proc, log)
        return {"registry_url": url, "service_token": SERVICE_TOKEN}

    def stop_all(self) -> list[str]:
        """Stop every process started; returns a line per one that did not exit 0."""
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.terminate()
        failures = []
        for proc, log in self.procs:
            try:
                code = proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = -9
            if code != 0:
                failures.append(f"registry service exited {code}: {log.read_text()[-2000:]}")
        return failures
