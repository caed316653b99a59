"""The contract harness's fixtures, for the shared tests and the per-channel ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

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
