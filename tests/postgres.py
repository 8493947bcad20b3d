"""A real PostgreSQL server for the tests: Debian's binaries, a free port, a temp dir.

initdb and postgres refuse to run as root, so as root they run as the ``postgres`` user
(``runuser``). Without the binaries the tests skip, or fail when DRIFTLINE_REQUIRE_REAL=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.localbroker.ports import free_ports


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


@dataclass
class PostgresServer:
    """A running throw-away PostgreSQL server."""

    bin: Path
    data: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_postgres() -> Iterator[PostgresServer]:
    """Start a server (generator: stops and removes it when closed)."""
    binary = pg_bin()
    if binary is None:
        raise FileNotFoundError("PostgreSQL server binaries (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="driftline-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    (port,) = free_ports(1)
    log = data / "server.log"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(binary / "initdb"),
                    "-D",
                    str(data / "db"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            **quiet,  # type: ignore[arg-type]
        )
        subprocess.run(
            _as_postgres(
                [
                    str(binary / "pg_ctl"),
                    "-D",
                    str(data / "db"),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c max_connections=200",
                    "start",
                ]
            ),
            check=True,
            **quiet,  # type: ignore[arg-type]
        )
        yield PostgresServer(binary, data, port)
    finally:
        subprocess.run(
            _as_postgres(
                [str(binary / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "-w", "stop"]
            ),
            check=False,
            **quiet,  # type: ignore[arg-type]
        )
        shutil.rmtree(data, ignore_errors=True)
