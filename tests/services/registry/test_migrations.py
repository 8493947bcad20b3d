"""The Alembic migrations build exactly the tables the ORM declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.registry.db import make_engine, migrate
from services.registry.tables import Base


def test_migrations_match_the_models(registry_url: str) -> None:
    engine = make_engine(registry_url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
