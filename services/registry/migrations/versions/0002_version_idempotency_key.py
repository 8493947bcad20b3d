"""model versions: an idempotency key, so a retried registration returns the first one

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add model_versions.idempotency_key (unique, nullable)."""
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint("uq_model_versions_idempotency_key", ["idempotency_key"])


def downgrade() -> None:
    """Drop model_versions.idempotency_key."""
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_model_versions_idempotency_key", type_="unique")
        batch_op.drop_column("idempotency_key")
