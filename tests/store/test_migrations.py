"""The models and the newest migration must describe the same schema."""

from __future__ import annotations

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
