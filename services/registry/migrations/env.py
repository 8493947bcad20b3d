"""Alembic environment: run with a connection handed in by services.registry.db."""

from __future__ import annotations

from alembic import context

from services.registry.tables import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
