"""The models and the newest migration must describe the same schema."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from publisher.store import Store
from publisher.store.models import Base


def test_migrations_match_models(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    store.migrate()  # idempotent: a second start changes nothing
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.dispose()
    assert diff == []


def test_a_migration_cut_short_on_sqlite_leaves_no_half_schema(tmp_path: Path) -> None:
    """pysqlite commits DDL statement by statement: a process killed mid-migration
    left tables the next start could not create again ("already exists")."""
    from sqlalchemy import inspect

    from publisher.store.db import _transactional_ddl, create_db_engine

    engine = create_db_engine(f"sqlite:///{tmp_path / 'half.db'}")
    with (
        engine.connect() as connection,
        contextlib.suppress(RuntimeError),
        _transactional_ddl(connection),
    ):
        connection.exec_driver_sql("CREATE TABLE first_step (id INTEGER)")
        raise RuntimeError("killed here")
    assert "first_step" not in inspect(engine).get_table_names()
    engine.dispose()
