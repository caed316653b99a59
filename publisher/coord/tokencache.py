"""One access token per platform account, shared by every worker through Redis.

Platforms such as WeChat hand out short-lived access tokens, limit how often
a new one may be fetched, and may invalidate the old token when a new one is
issued. So workers must not each fetch their own: the token lives in Redis,
and when it is missing, close to expiry or rejected by the platform exactly
one worker fetches a new one under a Redis lock while the others wait for it.

What a caller can rely on:

- `get()` returns a token with at least `refresh_margin` seconds left when
  the platform grants one that long; concurrent callers cause one fetch.
- `invalidate(token)` drops the token only if it is still the cached one, so
  ten workers that all saw the same token rejected cause one refresh, not
  ten (and never throw away the new token another worker just fetched).
- If the platform hands back the very token it just rejected, the fetch is
  repeated with `force=True` (WeChat's `force_refresh`), because asking
  politely again would only return the same dead token. Forcing has its own
  quota; when that is spent, the token the platform calls current is used.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import LockError

from publisher.domain.errors import RetryableError

if TYPE_CHECKING:
    import redis

    from publisher.config.settings import Settings

log = logging.getLogger(__name__)

# Compare-and-delete: drop the cached token only if it is the one that was
# rejected, and remember (as a digest) that it was rejected.
_INVALIDATE = """
if redis.call('HGET', KEYS[1], 'value') == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
    return 1
end
return 0
"""


@dataclass(frozen=True)
class FreshToken:
    """What a fetch from the platform returns: the token and its lifetime in seconds."""

    value: str
    expires_in: float


#: Fetches a token from the platform; the flag asks the platform to rotate it.
Fetch = Callable[[bool], FreshToken]


@dataclass(frozen=True)
class _Cached:
    value: str
    expires_at: float
    generation: int

    def remaining(self, now: float) -> float:
        return self.expires_at - now


class TokenCache:
    """A token in Redis under `settings.key("token", name)`, refreshed once for all workers.

    `fetch(force)` talks to the platform and raises a classified
    `DeliveryError` on failure; it runs only while this process holds the
    refresh lock. `lock_timeout` bounds how long a crashed worker can hold
    that lock, so it must exceed the fetch's own HTTP timeout.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        settings: Settings,
        name: str,
        fetch: Fetch,
        *,
        refresh_margin: float = 60.0,
        lock_timeout: float = 30.0,
        wait_timeout: float | None = None,
        poll_interval: float = 0.02,
    ) -> None:
        self._redis = redis_client
        self._fetch = fetch
        self.refresh_margin = refresh_margin
        self.lock_timeout = lock_timeout
        self.wait_timeout = lock_timeout + 5.0 if wait_timeout is None else wait_timeout
        self.poll_interval = poll_interval
        self.key = settings.key("token", name)
        self._lock_key = settings.key("token", name, "lock")
        self._generation_key = settings.key("token", name, "generation")
        self._rejected_key = settings.key("token", name, "rejected")
        self._invalidate = self._redis.register_script(_INVALIDATE)

    def get(self) -> str:
        """A valid token: the cached one, or one fetched now by exactly one worker."""
        cached = self._read()
        if cached is not None and cached.remaining(time.time()) > self.refresh_margin:
            return cached.value
        return self._refresh()

    def invalidate(self, token: str) -> bool:
        """Forget `token` because the platform rejected it; True if it was still cached.

        A no-op when the cache already holds another token, which is what
        keeps a burst of rejections from turning into a burst of fetches.
        """
        dropped = self._invalidate(
            keys=[self.key, self._rejected_key],
            args=[token, _digest(token), max(1, int(self.lock_timeout * 10))],
        )
        if dropped:
            log.info("access token %s rejected by the platform; dropped from the cache", self.key)
        return bool(dropped)

    def _refresh(self) -> str:
        """Fetch under the lock, or wait for the worker that holds it to store a token."""
        seen = self._generation()
        deadline = time.monotonic() + self.wait_timeout
        lock = self._redis.lock(self._lock_key, timeout=self.lock_timeout, blocking=False)
        while True:
            if lock.acquire(blocking=False):
                try:
                    return self._refresh_locked(seen)
                finally:
                    _release(lock)
            time.sleep(self.poll_interval)
            cached = self._read()
            if cached is not None and self._usable(cached, seen):
                return cached.value
            if time.monotonic() > deadline:
                raise RetryableError(
                    "access token: another worker is refreshing it and has not finished"
                )

    def _refresh_locked(self, seen: int) -> str:
        cached = self._read()
        if cached is not None and self._usable(cached, seen):
            return cached.value  # another worker refreshed while we queued for the lock
        try:
            fresh = self._fetch_checked()
        except RetryableError:
            if cached is not None and cached.remaining(time.time()) > 0:
                log.warning("access token refresh failed; using the cached one until it expires")
                return cached.value
            raise
        self._store(fresh)
        return fresh.value

    def _fetch_checked(self) -> FreshToken:
        """Fetch; rotate if the platform returned the token it had just rejected."""
        fresh = self._fetch(False)
        rejected = self._redis.get(self._rejected_key)
        if rejected is not None and _text(rejected) == _digest(fresh.value):
            log.info("the platform returned the rejected token again; forcing a new one")
            try:
                fresh = self._fetch(True)
            except RetryableError as exc:
                # Forcing has a quota of its own (WeChat: 20 a day, 30 s apart), and
                # the plain answer is the token the platform calls current: use it
                # rather than stop the account until the quota resets.
                log.warning("access token: could not force a new one (%s); using it", exc.reason)
        if not fresh.value or fresh.expires_in <= 0:
            raise RetryableError("access token: the platform returned an unusable token")
        return fresh

    def _usable(self, cached: _Cached, seen: int) -> bool:
        """Fresh enough, or stored after we started waiting (then any valid one will do)."""
        remaining = cached.remaining(time.time())
        return remaining > self.refresh_margin or (cached.generation > seen and remaining > 0)

    def _store(self, fresh: FreshToken) -> None:
        expires_at = time.time() + fresh.expires_in
        generation = int(self._redis.incr(self._generation_key))
        pipe = self._redis.pipeline()
        pipe.hset(
            self.key,
            mapping={
                "value": fresh.value,
                "expires_at": repr(expires_at),
                "generation": generation,
            },
        )
        pipe.pexpireat(self.key, int(expires_at * 1000) + 1)
        pipe.execute()

    def _read(self) -> _Cached | None:
        raw = {_text(k): _text(v) for k, v in self._redis.hgetall(self.key).items()}
        try:
            return _Cached(
                value=raw["value"],
                expires_at=float(raw["expires_at"]),
                generation=int(raw["generation"]),
            )
        except (KeyError, ValueError):
            return None

    def _generation(self) -> int:
        raw = self._redis.get(self._generation_key)
        return int(_text(raw)) if raw is not None else 0


def _text(value: bytes | str) -> str:
    """Redis answers bytes or str depending on the client's `decode_responses`."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _digest(token: str) -> str:
    """Remember rejected tokens by digest: a second copy of a secret helps nobody."""
    return hashlib.sha256(token.encode()).hexdigest()


def _release(lock: redis.lock.Lock) -> None:
    try:
        lock.release()
    except LockError:  # held past lock_timeout; another worker may own it now
        log.warning("access token lock expired before it was released")
