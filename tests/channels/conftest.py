"""The contract harness's fixtures, for the shared tests and the per-channel ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from mastodon import Mastodon
from mastodon_mock.testing.server import MockServer

from publisher.config.settings import Settings
from tests.channels.contract import ChannelFactory, ScriptedPlatform


@pytest.fixture
def build(
    make_settings: Callable[..., Settings],
    redis_client: redis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> ChannelFactory:
    return ChannelFactory(make_settings, redis_client, redis_prefix, monkeypatch)


@pytest.fixture
def platform() -> Iterator[ScriptedPlatform]:
    with ScriptedPlatform() as server:
        yield server


#: The account mastodon-mock's default test seed logs in as.
MASTODON_TOKEN = "alice_token"


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    """mastodon-mock: in-memory SQLite, seeded alice/bob/carol, a free loopback port."""
    with MockServer() as server:
        yield server


@pytest.fixture
def reader(mock_server: MockServer) -> Mastodon:
    """Mastodon.py logged in as the account the channel posts as."""
    return Mastodon(access_token=MASTODON_TOKEN, api_base_url=mock_server.base_url)
