"""The shared access-token cache against the machine's real Redis, with many threads.

Each thread builds its own `TokenCache`, as separate workers would; the
fetch function stands in for the platform and counts how often it is asked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import redis

from publisher.config.settings import Settings
from publisher.coord.tokencache import FreshToken, TokenCache
from publisher.domain.errors import PermanentError, RateLimitedError, RetryableError

WORKERS = 16


@dataclass
class Platform:
    """Issues numbered tokens; `slow` widens the race window for concurrent callers."""

    expires_in: float = 7200.0
    slow: float = 0.0
    calls: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fetch(self, force: bool) -> FreshToken:
        time.sleep(self.slow)
        with self.lock:
            self.calls.append(force)
            return FreshToken(f"token-{len(self.calls)}", self.expires_in)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def cache(
    client: redis.Redis, settings: Settings, name: str, platform: Platform, **kw: float
) -> TokenCache:
    return TokenCache(client, settings, name, platform.fetch, **kw)


def run_together(count: int, work: Callable[[], str]) -> list[str]:
    """Start `count` threads at the same instant; return what each got."""
    barrier = threading.Barrier(count)

    def one() -> str:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def test_concurrent_gets_fetch_exactly_once(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform(slow=0.2)
    got = run_together(WORKERS, lambda: cache(redis_client, settings, name, platform).get())
    assert platform.calls == [False]
    assert set(got) == {"token-1"}


def test_rejection_storm_refreshes_exactly_once(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform(slow=0.1)
    first = cache(redis_client, settings, name, platform).get()

    def rejected_then_get() -> str:
        worker = cache(redis_client, settings, name, platform)
        worker.invalidate(first)
        return worker.get()

    got = run_together(WORKERS, rejected_then_get)
    assert platform.calls == [False, False]
    assert set(got) == {"token-2"}


def test_invalidating_a_token_that_is_no_longer_cached_changes_nothing(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform()
    tokens = cache(redis_client, settings, name, platform)
    first = tokens.get()
    assert tokens.invalidate(first) is True
    second = tokens.get()
    assert tokens.invalidate(first) is False  # a slow worker reporting the old token
    assert tokens.get() == second
    assert len(platform.calls) == 2


@pytest.mark.parametrize(
    ("expires_in", "fetches"),
    [(7200.0, 1), (30.0, 2)],  # 30 s left is inside the 60 s margin: refresh
    ids=["fresh-token-reused", "about-to-expire-refreshed"],
)
def test_refresh_margin(
    redis_client: redis.Redis, settings: Settings, name: str, expires_in: float, fetches: int
) -> None:
    platform = Platform(expires_in=expires_in)
    tokens = cache(redis_client, settings, name, platform)
    tokens.get()
    tokens.get()
    assert len(platform.calls) == fetches


def test_expired_token_is_gone_from_redis_and_refetched(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform(expires_in=0.3)
    tokens = cache(redis_client, settings, name, platform, refresh_margin=0.05)
    assert tokens.get() == "token-1"
    assert 0 < redis_client.pttl(tokens.key) <= 301
    time.sleep(0.4)
    assert redis_client.exists(tokens.key) == 0
    assert tokens.get() == "token-2"


def test_platform_returning_the_rejected_token_forces_rotation(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    calls: list[bool] = []

    def stubborn(force: bool) -> FreshToken:
        calls.append(force)
        return FreshToken("rotated" if force else "same", 7200.0)

    tokens = TokenCache(redis_client, settings, name, stubborn)
    assert tokens.get() == "same"
    tokens.invalidate("same")
    assert tokens.get() == "rotated"
    assert calls == [False, False, True]


def test_a_refused_force_keeps_the_platforms_current_token(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    """WeChat allows 20 forced refreshes a day: past them it answers 45009. The
    plain answer is the token it calls current, so that one is used: the
    account is not stopped until the daily reset by a token that may work."""
    calls: list[bool] = []

    def quota_spent(force: bool) -> FreshToken:
        calls.append(force)
        if force:
            raise RateLimitedError("get access token: daily quota (code 45009)", code="45009")
        return FreshToken("same", 7200.0)

    tokens = TokenCache(redis_client, settings, name, quota_spent)
    assert tokens.get() == "same"
    tokens.invalidate("same")
    assert tokens.get() == "same"
    assert calls == [False, False, True]


def test_failed_fetch_releases_the_lock(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    outcomes: list[Exception | None] = [PermanentError("invalid appsecret (code 40125)"), None]

    def flaky(force: bool) -> FreshToken:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        return FreshToken("ok", 7200.0)

    tokens = TokenCache(redis_client, settings, name, flaky, lock_timeout=30.0)
    with pytest.raises(PermanentError):
        tokens.get()
    started = time.monotonic()
    assert tokens.get() == "ok"
    assert time.monotonic() - started < 1.0  # did not wait for a leftover lock


def test_retryable_refresh_failure_keeps_the_still_valid_token(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    results = [FreshToken("old", 30.0)]

    def fetch(force: bool) -> FreshToken:
        if not results:
            raise RetryableError("system busy (code -1)")
        return results.pop()

    tokens = TokenCache(redis_client, settings, name, fetch)
    assert tokens.get() == "old"
    assert tokens.get() == "old"  # refresh failed, but 30 s are still left


def test_lock_left_by_a_crashed_worker_expires(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform()
    tokens = cache(redis_client, settings, name, platform)
    redis_client.set(settings.key("token", name, "lock"), "crashed-worker", px=300)
    started = time.monotonic()
    assert tokens.get() == "token-1"
    assert 0.25 < time.monotonic() - started < 2.0


def test_waiting_too_long_for_another_worker_is_retryable(
    redis_client: redis.Redis, settings: Settings, name: str
) -> None:
    platform = Platform()
    tokens = cache(redis_client, settings, name, platform, wait_timeout=0.2)
    redis_client.set(settings.key("token", name, "lock"), "busy-worker", px=5000)
    with pytest.raises(RetryableError, match="another worker"):
        tokens.get()
    assert platform.calls == []
