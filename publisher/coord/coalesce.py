"""Coalesced jobs: at most `parallel` runs of one job at a time, across every
worker, and requests made while they run folded into one follow-up.

A feed rebuild (one run per channel) and a drain of a channel type's due
deliveries (a few runs in parallel) are both jobs that read the store when
they start, so one run covers every request made before it started. The
leading edge is what keeps an idle system fast: a request when nothing of
the job is queued and a run's place is free sends a task at once. A request
while a task is queued is already covered by it; a request while every place
is taken marks the job `again`, and the first run to finish queues the one
follow-up that covers them all.

Redis holds the state, with expiry times: a queued flag (`QUEUED_TTL` s, in
case its task is lost), the running runs as a sorted set of lease tokens
scored by when their lease ends (a run renews it while it works, so a killed
worker's place frees itself), and the `again` flag.

A burst is spaced out: after a busy run (the caller says which: more than
one item), or one that was itself a follow-up (the queued flag says who
queued it, and the run's token is kept as the `chain` while it runs), the
next run waits `spacing`, whether it is the follow-up or a request that
comes just after the run ended (a publisher held up by the run's own commit
is still part of the burst): the `cool` key lives that long and a request
meanwhile is sent with what is left of it as its countdown. A request that
meets the end of a quiet run that a request started is not held back.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

import redis

#: A queued run's flag lives this long: a request within it is already covered
#: by the task in the queue; after it (the task was lost) a request gets through.
QUEUED_TTL = 10

# Redis's own clock, in ms, so every worker agrees on when a lease ends.
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

# KEYS: queued, running, again, cool, for each name in turn. ARGV: ttl s, parallel.
# One answer per name: -1 = covered, else send a task with this countdown (ms).
# One round trip for them all.
_REQUEST = f"""
{_NOW}
local out = {{}}
for i = 1, #KEYS, 4 do
  local wait = -1
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now)
  if redis.call('EXISTS', KEYS[i]) == 1 then
    wait = -1
  elseif redis.call('ZCARD', KEYS[i + 1]) < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
    wait = math.max(0, redis.call('PTTL', KEYS[i + 3]))
  else
    redis.call('SET', KEYS[i + 2], '1', 'EX', ARGV[1])
  end
  out[#out + 1] = wait
end
return out
"""
# KEYS: queued, running, again, chain. ARGV: token, lease ms, parallel. 1 = this task runs.
# A queued flag of '2' was set by a finishing run: this run is its follow-up (the chain).
_START = f"""
{_NOW}
local queued_by = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
  if queued_by == '2' then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2]) end
  return 1
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return 0
"""
# KEYS: running. ARGV: token, lease ms. 0 = the lease was lost.
_RENEW = f"""
{_NOW}
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends or tonumber(ends) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
# KEYS: running, again, queued, chain, cool. ARGV: token, ttl s, more (1 = the run
# left work), busy (1 = the run was), spacing ms. Frees the place; a busy or chained
# run holds the next one off for the spacing. Queues the one follow-up that covers
# what came in meanwhile and returns its countdown (ms), or -1 for none.
_FINISH = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return -1 end
local chained = redis.call('GET', KEYS[4]) == ARGV[1]
if chained then redis.call('DEL', KEYS[4]) end
local wait = 0
if ARGV[4] == '1' or chained then wait = tonumber(ARGV[5]) end
if wait > 0 then redis.call('SET', KEYS[5], '1', 'PX', wait) end
if redis.call('DEL', KEYS[2]) == 1 or ARGV[3] == '1' then
  redis.call('SET', KEYS[3], '2', 'EX', ARGV[2])
  return wait
end
return -1
"""


class Coalescer:
    """One kind of coalesced job; `name` tells its instances apart (a channel,
    a channel type). `key` makes a key in the deployment's namespace from parts."""

    def __init__(
        self,
        client: redis.Redis,
        key: Callable[..., str],
        kind: str,
        *,
        parallel: int,
        lease_seconds: float,
        spacing: float = 0.0,
    ) -> None:
        self.redis = client
        self.key = key
        self.kind = kind
        self.parallel = max(1, parallel)
        self.lease_ms = int(lease_seconds * 1000)
        self.spacing_ms = int(spacing * 1000)
        self._request = client.register_script(_REQUEST)
        self._start = client.register_script(_START)
        self._renew = client.register_script(_RENEW)
        self._finish = client.register_script(_FINISH)

    def request(self, names: list[str]) -> dict[str, float]:
        """The names a task must be sent for, each with its countdown in seconds
        (0, or what is left of a busy run's spacing); the others are covered.
        Raises `redis.RedisError` when Redis does not answer."""
        if not names:
            return {}
        keys = [key for name in names for key in (*self.keys(name), self._cool(name))]
        waits = self._request(keys=keys, args=[QUEUED_TTL, self.parallel])
        return {
            name: int(wait) / 1000
            for name, wait in zip(names, waits, strict=True)
            if int(wait) >= 0
        }

    def started(self, name: str) -> str | None:
        """The run's lease token, or None when every place is taken (this
        task's request is folded into a running one's follow-up)."""
        token = secrets.token_hex(8)
        keys = [*self.keys(name), self._chain(name)]
        if self._start(keys=keys, args=[token, self.lease_ms, self.parallel]):
            return token
        return None

    def renew(self, name: str, token: str) -> bool:
        """Keep the run's place for another lease; False if it was lost (the run
        took longer than its lease and its place went to another)."""
        try:
            return bool(self._renew(keys=[self.keys(name)[1]], args=[token, self.lease_ms]))
        except redis.RedisError:
            return True  # Redis is away: the store's own leases still fence every write

    def finished(
        self, name: str, token: str, *, more: bool = False, busy: bool = False
    ) -> float | None:
        """Free the run's place. A follow-up must be sent if requests came in while
        it ran, or `more`: the run stopped with work left; returns its countdown in
        seconds (`spacing` after a `busy` run or one that was itself a follow-up,
        else 0), or None when none is due."""
        queued, running, again = self.keys(name)
        keys = [running, again, queued, self._chain(name), self._cool(name)]
        args: list[str | int] = [token, QUEUED_TTL, int(more), int(busy), self.spacing_ms]
        try:
            wait = int(self._finish(keys=keys, args=args))
        except redis.RedisError:
            return None  # the lease expires; the sweeper asks again
        return None if wait < 0 else wait / 1000

    def abandoned(self, name: str, token: str) -> None:
        """A failed run frees its place; the sweeper asks again."""
        with contextlib.suppress(redis.RedisError):  # the lease expires on its own
            self.redis.zrem(self.keys(name)[1], token)

    def keys(self, name: str) -> list[str]:
        kind = self.kind
        return [self.key(kind, name), self.key(f"{kind}-running", name),
                self.key(f"{kind}-again", name)]  # fmt: skip

    def _chain(self, name: str) -> str:
        """The token of the running follow-up, if one is running."""
        return self.key(f"{self.kind}-chain", name)

    def _cool(self, name: str) -> str:
        """Present for `spacing` after a busy run: the next one waits it out."""
        return self.key(f"{self.kind}-cool", name)
