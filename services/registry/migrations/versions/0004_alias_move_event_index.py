"""alias moves: an index on event_id, so a retried move (its ``move_id``) is found at once

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index alias_moves.event_id."""
    op.create_index("ix_alias_moves_event_id", "alias_moves", ["event_id"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_alias_moves_event_id", table_name="alias_moves")
