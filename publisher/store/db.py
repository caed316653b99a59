"""Connecting to the store: SQLite under the data dir by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the one driver we install)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5)
    _ping_when_idle(engine)
    return engine


#: A pooled connection handed back longer ago than this is pinged before use.
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled PostgreSQL connection before use only if it sat idle.

    `pool_pre_ping` pings on every checkout: a round trip before every
    transaction, a tenth of a publish's time. A connection handed back less
    than `PING_AFTER_IDLE` ago was working a moment before; one idle longer may
    have been closed by the server (a restart, an idle timeout), and then the
    pool replaces it before the caller sees it (`DisconnectionError`).
    """

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in")  # none yet: connected just now
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection is gone") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (API, sweeper) run while a worker writes; the busy
    # timeout makes concurrent writers wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection_engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe to call on every start.

    Any number of processes (worker, beat, API) may start at once on a fresh
    store: one migrates while the others wait, then find the schema current.
    PostgreSQL serialises them with an advisory lock; SQLite has none, and
    its DDL is not transactional under pysqlite, so they take turns on a
    file lock beside the database instead.
    """
    with _sqlite_migration_lock(engine), engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        with _transactional_ddl(connection):
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        connection.commit()


@contextlib.contextmanager
def _transactional_ddl(connection: Connection) -> Iterator[None]:
    """On SQLite, run the migration in one real transaction.

    pysqlite opens transactions only before DML, so DDL commits statement by
    statement: a process killed mid-migration leaves half a schema that the
    next start cannot migrate ("table already exists"). Taking transaction
    control back for this connection makes the whole upgrade one unit.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw: Any = connection.connection.dbapi_connection
    previous = raw.isolation_level
    raw.isolation_level = None  # pysqlite leaves BEGIN/COMMIT to us
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    finally:
        raw.isolation_level = previous


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Hold `<database>.migrate.lock` exclusively; nothing for other databases
    and for an in-memory SQLite (only this process can see it)."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".migrate.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even on a crash
        yield
