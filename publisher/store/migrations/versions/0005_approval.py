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


def _sqlite_state_length(old: int, new: int) -> None:
    """The declared length of `deliveries.state`, changed in SQLite's schema text.

    Batch mode would copy the table and drop the old one, and with foreign keys
    on, that DROP deletes every row first, cascading to the attempt log and the
    notifications. SQLite ignores a VARCHAR's length (both are TEXT affinity),
    so only the declaration changes: the procedure SQLite documents for schema
    changes that leave the stored format alone (ALTER TABLE, "other kinds of
    table schema changes"), inside the migration's transaction.
    """
    bind = op.get_bind()
    before, after = f"state VARCHAR({old}) NOT NULL", f"state VARCHAR({new}) NOT NULL"
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"
    ).scalar_one()
    if sql.count(before) != 1:
        raise RuntimeError(f"deliveries.state is not declared as {before!r}")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'deliveries'",
        (sql.replace(before, after),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    # "awaiting_approval" is 17 characters: PostgreSQL would refuse it in a VARCHAR(16).
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_state_length(16, 32)
    else:
        op.alter_column(
            "deliveries", "state", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )
    # NULL: no approval asked (an editor's version, or approval off); else
    # awaiting, approved or rejected. A plain ADD COLUMN everywhere.
    op.add_column("article_versions", sa.Column("approval", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # Rows still waiting for an editor have no state to go back to: they are cancelled.
    op.execute("UPDATE deliveries SET state = 'cancelled' WHERE state = 'awaiting_approval'")
    # SQLite ≥ 3.35 drops a column in place (no copy of a table others refer to).
    op.execute("ALTER TABLE article_versions DROP COLUMN approval")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_state_length(32, 16)
    else:
        op.alter_column(
            "deliveries", "state", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
