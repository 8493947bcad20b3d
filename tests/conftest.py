"""Fixtures shared by every test directory: a real PostgreSQL server for the run and the
registry database on each backend."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, start_postgres
from tests.real import require_real


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal sends it, whoever started the run: a shell that runs a job in
    the background (``make test &``, nohup) starts it with SIGINT ignored, and every
    process a test starts would inherit that (the demo's and the CLI's Ctrl-C tests)."""
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
