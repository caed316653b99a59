"""Fixtures shared by the whole suite.

Tests share the machine's Redis with whatever else runs, so every test run
gets its own key prefix and deletes only keys under it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from channels import build_channel
from channels.base import Channel, ChannelContext
from publisher.config.settings import Settings
from publisher.local.cluster import write_matrix
from publisher.store import Store

SAMPLES = Path(__file__).parent.parent / "publisher" / "local" / "demo_samples"
TEST_REDIS_URL = os.environ.get("PUBLISHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def english_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read English unless they ask for another language: the machine's own
    `LANG` (or a developer's `PUBLISHER_LOCALE`) must not change what a test sees,
    in this process or in the commands it starts."""
    for variable in ("LC_ALL", "LC_MESSAGES", "PUBLISHER_LOCALE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"pubtest-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="session")
def redis_client(redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"the machine's Redis at {TEST_REDIS_URL} is not running")
    yield client
    for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def make_settings(tmp_path: Path, redis_prefix: str) -> Callable[..., Settings]:
    """Build real `Settings` from a matrix written to a temp dir, plus env overrides."""

    def build(
        channels: dict[str, dict[str, Any]] | None = None,
        feeds: dict[str, Any] | None = None,
        **env: str,
    ) -> Settings:
        matrix = write_matrix(
            tmp_path / "matrix.toml",
            channels or {"site": {"type": "rss"}, "app": {"type": "app_feed"}},
            {"title": "Test Daily", "home_page_url": "https://news.example.org/", **(feeds or {})},
        )
        base = {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "PUBLISHER_REDIS_PREFIX": redis_prefix,
        }
        return Settings.load({**base, **env})

    return build


POSTGRES_URL = os.environ.get(
    "PUBLISHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on each database."""
    s = Store(database_url)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def channels(make_settings: Callable[..., Settings]) -> dict[str, Channel]:
    """The default matrix's channels, built for formatting (no Redis)."""
    settings = make_settings()
    context = ChannelContext(settings)
    return {n: build_channel(c, context) for n, c in settings.channels.items()}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store on SQLite, and on the machine's PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from postgres_schema_url()


def postgres_schema_url() -> Iterator[str]:
    import sqlalchemy

    schema = f"pubtest_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sqlalchemy.exc.OperationalError:
        pytest.fail(f"the machine's PostgreSQL at {POSTGRES_URL} is not running")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
