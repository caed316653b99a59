"""deliveries get a kind: publish, correction or retract

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


#: The tables whose rows belong to a delivery (ON DELETE CASCADE).
DEPENDENTS = ("attempts", "notifications")


@contextmanager
def keeping_dependents() -> Iterator[None]:
    """SQLite's batch mode copies `deliveries` and drops the old table; with foreign
    keys on, that DROP first deletes every row, and the cascade empties the attempt
    log and the notifications. Their rows are kept aside and put back, in the
    migration's one transaction (a crash leaves the store as it was)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for table in DEPENDENTS:
            op.execute(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")
    yield
    if sqlite:
        for table in DEPENDENTS:
            op.execute(
                f"INSERT INTO {table} SELECT * FROM kept_{table} "
                f"WHERE id NOT IN (SELECT id FROM {table})"
            )
            op.execute(f"DROP TABLE kept_{table}")


def upgrade() -> None:
    with keeping_dependents():
        _upgrade()


def _upgrade() -> None:
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
    with keeping_dependents(), op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_delivery_article_channel_kind", type_="unique")
        batch_op.create_unique_constraint("uq_delivery_article_channel", ["article_id", "channel"])
        batch_op.drop_column("kind")
