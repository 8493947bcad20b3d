"""Fixtures shared by every test directory: a real PostgreSQL server for the run and the
registry database on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, start_postgres
from tests.real import require_real


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, stopped at the end."""
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
