"""approval: the awaiting_approval state fits the state column; versions say whether
an editor must approve them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "awaiting_approval" is 17 characters: PostgreSQL would refuse it in a VARCHAR(16).
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "state", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )
    # NULL: no approval asked (an editor's version, or approval off); else
    # awaiting, approved or rejected.
    with op.batch_alter_table("article_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # Rows still waiting for an editor have no state to go back to: they are cancelled.
    op.execute("UPDATE deliveries SET state = 'cancelled' WHERE state = 'awaiting_approval'")
    with op.batch_alter_table("article_versions", schema=None) as batch_op:
        batch_op.drop_column("approval")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column(
            "state", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
