"""Only one beat: a Redis lock held, and renewed, by the beat that sends.

Two beats would sweep twice and, worse, run every recurring job twice in
the same second. The beat that holds `<prefix>beat:lock` sends; any other
one stands by without sending, and takes over once the lock frees (its
holder stopped and released it, or died and stopped renewing it for
`PUBLISHER_BEAT_LOCK_SECONDS`). `publisher beat` refuses to start while
another beat holds the lock unless given `--standby`.

The lock is a `SET NX PX` with a random token; renewal and release are
compare-and-set scripts, so a beat that lost the lock (paused past its
expiry) can neither extend nor delete its successor's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

import redis
from celery import Celery
from celery.beat import Scheduler

from publisher.config.settings import Settings
from publisher.coord.broker import locate_redis
from publisher.domain.errors import PublisherError

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class BeatLockHeld(PublisherError):
    """Another beat holds the lock; the message says which and for how long."""


class BeatLock:
    """The one-beat lock for a deployment (one Redis key prefix)."""

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held_until = 0.0  # monotonic; past it we no longer count on holding the lock

    @classmethod
    def for_settings(cls, settings: Settings) -> BeatLock:
        client = redis.Redis.from_url(locate_redis(settings, start=False).client_url)
        return cls(client, settings.key("beat", "lock"), settings.beat_lock_seconds)

    @property
    def held(self) -> bool:
        return time.monotonic() < self._held_until

    def acquire(self) -> bool:
        started = time.monotonic()
        if self.client.set(self.key, self.token, nx=True, px=self._ttl_ms()):
            self._held_until = started + self.ttl
            return True
        return False

    def renew(self) -> bool:
        """Extend our hold; False if the lock is no longer ours."""
        started = time.monotonic()
        if self.client.eval(_RENEW, 1, self.key, self.token, self._ttl_ms()):
            self._held_until = started + self.ttl
            return True
        self._held_until = 0.0
        return False

    def release(self) -> None:
        self._held_until = 0.0
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def holder(self) -> str:
        """Who holds the lock and for how much longer, for a message."""
        value = self.client.get(self.key)
        if value is None:
            return "nobody"
        holder = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        left = max(0, int(self.client.pttl(self.key))) / 1000
        return f"pid {pid} on {host}, lock expires in {left:.0f}s unless renewed"

    def refuse_if_held(self) -> None:
        """Take the lock now or raise `BeatLockHeld` naming the holder."""
        if not self.acquire():
            raise BeatLockHeld(
                f"another beat is running ({self.holder()}); run exactly one beat per "
                "deployment, or start this one with --standby to take over when it stops"
            )

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))


class GuardedScheduler(Scheduler):
    """Celery's scheduler, sending only while it holds the beat lock.

    Used by `publisher beat` and `publisher worker --beat` (`beat_scheduler`
    in the Celery config). The lock is renewed on the beat's own tick, so it
    is held exactly as long as this beat keeps ticking. The schedule lives
    in memory, not in a shelve file: every entry is an interval of seconds,
    and what must survive a restart (when a feed was polled, which
    syndication runs happened) is in the database, so two beats on one data
    dir never share a file either.
    """

    def __init__(self, app: Celery, *args: Any, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        taken: BeatLock | None = getattr(app, "publisher_beat_lock", None)
        self.guard = taken or BeatLock.for_settings(app.publisher_settings)
        self._standing_by = False
        self._renewed_at = time.monotonic() if self.guard.held else 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        renew_every = self.guard.ttl / 3
        try:
            if self.guard.held and time.monotonic() - self._renewed_at >= renew_every:
                if self.guard.renew():
                    self._renewed_at = time.monotonic()
                else:
                    log.error("beat: lost the beat lock to %s; standing by", self.guard.holder())
                    self._standing_by = True
            if not self.guard.held and not self._take_lock():
                return min(1.0, renew_every)
        except redis.RedisError as exc:
            # Keep sending while the hold we last confirmed lasts; after that, stop.
            log.warning("beat: cannot reach Redis for the beat lock: %s", exc)
            if not self.guard.held:
                return min(1.0, renew_every)
        interval = super().tick(*args, **kwargs)
        return max(0.0, min(float(interval), renew_every))

    def _take_lock(self) -> bool:
        if self.guard.acquire():
            self._renewed_at = time.monotonic()
            if self._standing_by:
                log.warning("beat: took over the beat lock; sending from now on")
            self._standing_by = False
            return True
        if not self._standing_by:
            log.warning(
                "beat: another beat is running (%s); standing by until it stops",
                self.guard.holder(),
            )
            self._standing_by = True
        return False

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.guard.held:
                with contextlib.suppress(redis.RedisError):  # else it expires on its own
                    self.guard.release()
