"""The session base every side of the store stands on: one engine, one session factory."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from publisher.domain.errors import ConfigError
from publisher.store.db import create_db_engine, migrate


class StoreBase:
    """Owns the engine. Each side of the store (`publisher.store.core.Store`'s
    mixins) opens its own short transactions through `session()`."""

    def __init__(self, database_url: str, *, engine: Engine | None = None) -> None:
        self.engine = engine or create_db_engine(database_url)
        if not self.engine.dialect.update_returning:
            # Claims and outcomes are one `UPDATE … RETURNING` each (PostgreSQL,
            # SQLite ≥ 3.35); without it a claim would need a second, racy read.
            raise ConfigError(
                f"the database ({self.engine.dialect.name}) does not support UPDATE … RETURNING; "
                "use PostgreSQL or SQLite 3.35 or newer"
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    def session(self) -> Session:
        return self._sessions()

    def ping(self) -> None:
        """Raise if the database does not answer (the health check's probe)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
