"""checkpoints: the state's bytes move to the artifact store; ``blob`` becomes nullable

Rows written before this migration keep their bytes in ``blob`` and stay readable; new
rows leave it NULL and the bytes live in the artifact store under the row's ``sha256``.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Allow checkpoints.blob to be NULL (the bytes are in the artifact store)."""
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.alter_column("blob", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    """Make checkpoints.blob required again.

    Checkpoints whose bytes are in the artifact store cannot be expressed by the older
    schema: they are deleted (their owners start over from the previous checkpoint kept
    in the database, or from the beginning).
    """
    op.execute(sa.text("DELETE FROM checkpoints WHERE blob IS NULL"))
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.alter_column("blob", existing_type=sa.LargeBinary(), nullable=False)
