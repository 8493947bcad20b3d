"""Every registry test runs on SQLite and on a real PostgreSQL started for the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.postgres import PostgresServer, start_postgres
from tests.real import require_real

KEY = "test-signing-key-0123456789"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run."""
    try:
        server = start_postgres()
        yield next(server)
    except (FileNotFoundError, OSError) as exc:
        require_real(f"PostgreSQL is not available: {exc}")
    else:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def settings(registry_url: str, tmp_path: Path) -> DriftlineSettings:
    """Settings with a signing key and this test's database and artifact dir."""
    return DriftlineSettings.load(
        env={},
        data_dir=tmp_path,
        registry_url=registry_url,
        signing_key=KEY,
        signing_key_id="k1",
    )


@pytest.fixture
def registry(settings: DriftlineSettings) -> Iterator[Registry]:
    """An open registry (no Kafka relay: events wait in the outbox)."""
    reg = Registry.open(settings, relay=False)
    yield reg
    reg.close()
