"""Migrations on a store in use keep its rows.

0004 used to empty the attempt log on SQLite (its table copy's DROP cascaded).
0005 lets the state column take `awaiting_approval` (17 characters, past
PostgreSQL's old VARCHAR(16)), and going back cancels what waits rather than
leaving a state the old schema cannot hold. Neither way loses the attempt log.
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from publisher.store.db import alembic_config, create_db_engine

ROWS = [
    "INSERT INTO articles (id, current_version, published_at, created_at, updated_at) "
    "VALUES ('m-1', 1, :t, :t, :t)",
    "INSERT INTO article_versions (article_id, version, content_hash, data, created_at) "
    "VALUES ('m-1', 1, 'h', '{}', :t)",
    "INSERT INTO deliveries (article_id, article_version, channel, channel_type, kind, state, "
    "attempts, max_attempts, published_at, outcome_unknown, created_at, updated_at) "
    "VALUES ('m-1', 1, 'site', 'rss', 'publish', 'pending', 0, 8, :t, 0, :t, :t)",
    "INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome) "
    "SELECT id, 1, :t, 5, 'retrying' FROM deliveries",
]


def _to(engine, revision: str, down: bool = False) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
        connection.commit()


def test_0005_upgrades_a_store_in_use_and_downgrades_what_waits(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        _to(engine, "0004")
        with engine.begin() as connection:
            for statement in ROWS:
                connection.execute(text(statement), {"t": "2026-12-01 08:00:00+00:00"})
        _to(engine, "head")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM attempts")).scalar() == 1
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        with engine.begin() as connection:
            connection.execute(text("UPDATE deliveries SET state = 'awaiting_approval'"))
            connection.execute(text("UPDATE article_versions SET approval = 'awaiting'"))
        _to(engine, "0004", down=True)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT state FROM deliveries")).scalars().all() == [
                "cancelled"
            ]
            assert connection.execute(text("SELECT count(*) FROM attempts")).scalar() == 1
    finally:
        engine.dispose()


def test_0004_keeps_the_attempt_log_of_a_store_in_use(database_url: str) -> None:
    """0004 copies `deliveries` on SQLite (batch mode); the drop of the old table
    used to cascade and empty the attempt log of every store that upgraded."""
    engine = create_db_engine(database_url)
    try:
        _to(engine, "0003")
        with engine.begin() as connection:
            for statement in ROWS:
                connection.execute(
                    text(statement.replace("kind, ", "").replace("'publish', ", "")),
                    {"t": "2026-12-01 08:00:00+00:00"},
                )
        _to(engine, "0004")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM attempts")).scalar() == 1
            assert connection.execute(text("SELECT kind FROM deliveries")).scalar() == "publish"
        _to(engine, "0003", down=True)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM attempts")).scalar() == 1
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        engine.dispose()
