"""Engines for SQLite (embedded default) and PostgreSQL, and migrations at start-up.

SQLite runs in WAL mode with a busy timeout, and every transaction starts with
``BEGIN IMMEDIATE``: writers from several processes queue instead of failing, and a
read that turns into a write cannot deadlock. The write-ahead log is checkpointed every
:data:`WAL_PAGES` pages and cut back to :data:`WAL_BYTES` afterwards, so it stays about a
megabyte instead of keeping its largest size forever (freed database pages are reused by
later writes, so the file itself stops growing once retention deletes as much as is
written; ``driftline gc`` also runs ``VACUUM`` to give free pages back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from services.common.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
WAL_PAGES = 256  # PRAGMA wal_autocheckpoint (SQLite's default is 1000 pages, ~4 MB)
WAL_BYTES = 1 << 20  # PRAGMA journal_size_limit: the WAL is truncated to this after a checkpoint
# A fixed key for PostgreSQL's advisory lock around migrations.
_MIGRATION_LOCK = 0x64726966746C6E  # "driftln"


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for ``url`` (``DRIFTLINE_REGISTRY_URL``), with driftline's connection rules."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a config error
        raise ConfigError("DRIFTLINE_REGISTRY_URL", f"not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        _sqlite_rules(engine, busy_timeout_ms)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(
        "DRIFTLINE_REGISTRY_URL", f"unsupported database {backend!r} (use sqlite or postgresql)"
    )


def _sqlite_rules(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration up to head (safe when several processes race)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
