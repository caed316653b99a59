"""deliveries get a kind: publish, correction or retract

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows are the articles themselves: server_default keeps them.
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="publish", nullable=False)
        )
        batch_op.drop_constraint("uq_delivery_article_channel", type_="unique")
        batch_op.create_unique_constraint(
            "uq_delivery_article_channel_kind", ["article_id", "channel", "kind"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE kind != 'publish'")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_delivery_article_channel_kind", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_article_channel", ["article_id", "channel"])
        batch_op.drop_column("kind")
