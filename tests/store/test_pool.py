"""PostgreSQL's connection pool pings a connection only after it sat idle
(`publisher.store.db._ping_when_idle`): a connection the server closed while
it was idle is replaced before anyone uses it, and one closed while it was
working costs one failed statement, as it would with a ping on every use."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from publisher.store import Store, db
from tests.conftest import POSTGRES_URL, postgres_schema_url


@pytest.fixture
def pg_store() -> Iterator[Store]:
    for url in postgres_schema_url():
        store = Store(url)
        store.migrate()
        yield store
        store.dispose()


def backend_pid(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def terminate(pid: int) -> None:
    """What a server restart or an idle timeout does to our connection."""
    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    finally:
        admin.dispose()


def test_a_connection_closed_while_idle_is_replaced_before_use(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.05)
    first = backend_pid(pg_store)
    terminate(first)
    time.sleep(0.2)  # idle past the threshold
    pg_store.ping()  # no error: the pool saw it was gone and connected anew
    assert backend_pid(pg_store) != first


def test_a_connection_closed_while_busy_fails_one_statement_then_is_replaced(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)  # never idle long enough
    first = backend_pid(pg_store)
    terminate(first)
    time.sleep(0.2)
    with pytest.raises(OperationalError):
        pg_store.ping()
    pg_store.ping()  # the pool dropped it: the next use connects anew
    assert backend_pid(pg_store) != first
