"""A token bucket in Redis, shared by every worker that posts for one account.

Platforms limit posts per account, not per process, and Celery's own
`rate_limit` is per worker: two workers would each spend the whole budget.
The bucket lives in Redis and is updated by one Lua script, so taking a
token is atomic however many workers compete, and the clock is Redis's
own (`TIME`), so workers on machines with skewed clocks still agree.

A worker never sleeps on the bucket: `take()` says how long to wait and the
caller raises `RetryableError(retry_after=wait)`, leaving the worker free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

# KEYS[1]: the bucket (a hash of `tokens` and `ts`, the time they were counted).
# ARGV: refill rate (tokens per second), burst (capacity).
# Returns "0" when a token was taken, else the seconds until one is available,
# as a string because Redis truncates Lua numbers to integers.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1]) or burst
local ts = tonumber(saved[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
-- A bucket left alone refills completely; after that a missing key means the same.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class TokenBucket:
    """`burst` tokens, refilled at `rate` tokens every `per` seconds.

    In any window of T seconds the bucket grants at most
    `burst + rate * T / per` tokens, whatever the number of callers.
    """

    def __init__(self, redis: redis.Redis, key: str, rate: float, per: float, burst: int) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be greater than 0")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.redis = redis
        self.key = key
        self.rate = rate
        self.per = per
        self.burst = burst
        self._script = redis.register_script(_TAKE)

    @property
    def tokens_per_second(self) -> float:
        return self.rate / self.per

    def take(self) -> float:
        """Take one token: 0.0 if granted, otherwise the seconds until one is free.

        A refusal takes nothing, so the wait is exact for the next caller too.
        """
        result = self._script(keys=[self.key], args=[repr(self.tokens_per_second), self.burst])
        raw = result.decode() if isinstance(result, bytes) else str(result)
        return max(0.0, float(raw))

    def reset(self) -> None:
        """Forget the bucket (full again): for an operator after a platform-side reset."""
        self.redis.delete(self.key)
