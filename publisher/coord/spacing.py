"""Minimum spacing between posts on one account, shared by every worker through Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

# KEYS[1]: the account's slots, a sorted set scored in microseconds of Redis's
# clock (whole numbers, exact in a double): `last` is when the latest post
# started, every other member a delivery's reserved slot.
# ARGV: the holder (one delivery), the spacing in microseconds.
# Returns {slot, now} as strings (Redis truncates Lua numbers to integers, and
# tostring would round these): slot <= now means "post now", recorded as `last`.
_RESERVE = """
local key, holder = KEYS[1], ARGV[1]
local spacing = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function text(x) return string.format('%.0f', x) end
-- A slot more than `spacing` ago constrains nobody: forget it (and a holder
-- that comes back that late queues again, behind everyone).
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. text(now - spacing))
local slot = nil
local held = redis.call('ZSCORE', key, holder)
if held then
  held = tonumber(held)
  if held > now then
    return {text(held), text(now)}  -- woken early: the slot is still its own
  end
  local last = redis.call('ZSCORE', key, 'last')
  if last and now - tonumber(last) < spacing then
    slot = tonumber(last) + spacing  -- the post before started late, or this slot lapsed
  end
else
  local top = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
  if #top > 0 and tonumber(top[2]) + spacing > now then slot = tonumber(top[2]) + spacing end
end
if slot then
  redis.call('ZADD', key, text(slot), holder)
else
  redis.call('ZREM', key, holder)
  redis.call('ZADD', key, text(now), 'last')
end
local top = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
redis.call('PEXPIRE', key, math.ceil((tonumber(top[2]) + spacing - now) / 1000) + 1000)
return {text(slot or now), text(now)}
"""


@dataclass(frozen=True)
class Reservation:
    """A slot on the account's clock, in microseconds of Redis time: post at `slot`."""

    slot: int
    now: int

    @property
    def wait(self) -> float:
        """Seconds until the slot; 0.0: post now."""
        return max(0, self.slot - self.now) / 1_000_000


class SpacingSlots:
    """The next free slot on one account, shared by every worker through Redis.

    `reserve(holder)` gives a first caller the slot `spacing` seconds after
    the latest one handed out (or now) and keeps it for that holder: asking
    again before it comes returns the same slot, so waiting callers keep
    their order instead of pushing each other back. When its slot has come
    the holder posts, and that start becomes the account's latest post; if
    the post before it started late (or this holder's slot lapsed), it first
    waits out the difference. One Lua script does it all, so posts start at
    least `spacing` apart however many workers ask, on Redis's own clock
    (`TIME`), which every worker shares. Like the token bucket it never
    sleeps: it says how long to wait.
    """

    def __init__(self, redis: redis.Redis, key: str, spacing: float) -> None:
        if spacing <= 0:
            raise ValueError("spacing must be greater than 0")
        self.redis = redis
        self.key = key
        self.spacing = spacing
        self._script = redis.register_script(_RESERVE)

    def reserve(self, holder: str) -> Reservation:
        micros = max(1, round(self.spacing * 1_000_000))
        slot, now = self._script(keys=[self.key], args=[holder, micros])
        return Reservation(int(_text(slot)), int(_text(now)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
