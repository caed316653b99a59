"""Posting slots on one account, shared by every worker through Redis.

An account's posts are limited by rules of one shape: "at most `burst` at
once, then one every `interval` seconds" (a generic cell-rate limit, GCRA).
`min_spacing = 600` is the rule (600 s, burst 1); a budget of 30 posts an
hour with a burst of 5 is the rule (3600 / 25 s, burst 5), which lets no 60
minutes see more than 30 posts however they bunch up. An account may have
several rules at once, and a *hold*: the platform itself said the account's
limit is spent (Weibo 10023, HTTP 429, WeChat 45009) and nothing may go out
before its reset.

A delivery that cannot post now *reserves* its slot instead of failing: the
first time it asks it gets the next free slot after every slot already
handed out, and it keeps that slot when it asks again, so a backlog drains
one per slot in the order it arrived, with no herd of wake-ups competing for
the next free one. When a holder's slot has come it posts, and that start is
checked once more against the rules on the starts that really happened (an
earlier post may have started late); only a start that keeps every rule is
recorded. One Lua script does each step atomically on Redis's own clock
(`TIME`), which every worker shares. It never sleeps: it says when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

# Times are whole microseconds of Redis's clock, kept as strings (Redis
# truncates Lua numbers it returns, and tostring would round these).
# KEYS[1]: the account's hash: `hold` (no post before it) and, per rule i,
#   `r<i>` (when the next reservation conforms: the reservations' theoretical
#   arrival time) and `a<i>` (the same over the starts that happened).
# KEYS[2]: a sorted set of holders (deliveries) scored by their reserved slot.
# ARGV for both scripts: the number of rules n, then n pairs (interval, tolerance),
# tolerance = (burst - 1) * interval; then the script's own arguments.
_COMMON = """
local state, holders = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local rules = {}
local widest = 60000000  -- a stale holder is forgotten after max(60 s, widest interval)
for i = 1, n do
  local interval, tolerance = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  rules[i] = {interval, tolerance}
  if interval > widest then widest = interval end
end
local rest = 2 * n + 2
local LATE = 5000000  -- a holder whose slot came this long ago is still waited for
local gap = 0  -- the widest interval: one slot's length
for i = 1, n do gap = math.max(gap, rules[i][1]) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function text(x) return string.format('%.0f', x) end
local function num(field) return tonumber(redis.call('HGET', state, field) or '0') or 0 end
local hold = num('hold')
local function expire(latest)
  local ms = math.ceil((latest - now + widest) / 1000)
  redis.call('PEXPIRE', state, ms)
  redis.call('PEXPIRE', holders, ms)
end
local function latest_of(x)
  for i = 1, n do x = math.max(x, num('r' .. i), num('a' .. i)) end
  local top = redis.call('ZREVRANGE', holders, 0, 0, 'WITHSCORES')
  if #top > 0 then x = math.max(x, tonumber(top[2])) end
  return math.max(x, hold)
end
-- The earliest instant the starts that happened allow: returns it and the
-- cause (0 nothing, 1 the hold, 1 + i rule i).
local function earliest_start(from)
  local at, cause = from, 0
  if hold > at then at, cause = hold, 1 end
  for i = 1, n do
    local t = num('a' .. i) - rules[i][2]
    if t > at then at, cause = t, 1 + i end
  end
  return at, cause
end
local function record_start()
  for i = 1, n do
    redis.call('HSET', state, 'a' .. i, text(math.max(num('a' .. i), now) + rules[i][1]))
  end
end
"""

# ARGV after the rules: the holder, its priority (publishing order: smaller
# first). Returns {slot, now, cause}: slot <= now means "post now" (the start is
# recorded); otherwise the holder keeps `slot` until it comes.
_RESERVE = (
    _COMMON
    + """
local holder, priority = ARGV[rest], tonumber(ARGV[rest + 1])
local stale = redis.call('ZRANGEBYSCORE', holders, '-inf', '(' .. text(now - widest))
for _, gone in ipairs(stale) do redis.call('HDEL', state, 'p:' .. gone) end
redis.call('ZREMRANGEBYSCORE', holders, '-inf', '(' .. text(now - widest))
local mine = tonumber(redis.call('ZSCORE', holders, holder) or '')
local slot, cause
if mine and mine > now then
  -- woken early: the slot is still its own (behind the account's hold, if one is on)
  return {text(mine), text(now), hold > now and '1' or '0'}
end
if not mine then
  -- A new reservation: the next slot every rule allows after those handed out.
  slot, cause = now, 0
  if hold > slot then slot, cause = hold, 1 end
  for i = 1, n do
    local t = math.max(num('r' .. i), num('a' .. i)) - rules[i][2]
    if t > slot then slot, cause = t, 1 + i end
  end
  for i = 1, n do
    redis.call('HSET', state, 'r' .. i, text(math.max(num('r' .. i), slot) + rules[i][1]))
  end
  if slot > now then
    -- Every waiting holder and this one take the waiting slots in publishing
    -- order: one that arrived late (another worker claimed it a moment later)
    -- does not go after those published after it.
    local waiting = redis.call('ZRANGEBYSCORE', holders, '(' .. text(now), '+inf', 'WITHSCORES')
    local times, queue = {}, {}
    for j = 1, #waiting, 2 do
      times[#times + 1] = tonumber(waiting[j + 1])
      queue[#queue + 1] = {waiting[j], tonumber(redis.call('HGET', state, 'p:' .. waiting[j]))}
    end
    times[#times + 1] = slot
    queue[#queue + 1] = {holder, priority}
    redis.call('HSET', state, 'p:' .. holder, tostring(priority))
    for j = #queue, 2, -1 do  -- one insertion: only the new holder can be out of order
      local a, b = queue[j - 1], queue[j]
      if b[2] and a[2] and b[2] < a[2] then queue[j - 1], queue[j] = b, a else break end
    end
    for j = 1, #queue do
      redis.call('ZADD', holders, text(times[j]), queue[j][1])
      if queue[j][1] == holder then slot = times[j] end
    end
    expire(latest_of(slot))
    return {text(slot), text(now), tostring(cause)}
  end
end
-- Its slot has come. One published before it whose slot has come too (its
-- worker is a moment late) goes first: this one waits a slot behind it.
local from = mine or now
if n > 0 then
  local due = redis.call('ZRANGEBYSCORE', holders, text(now - LATE), text(now))
  for _, other in ipairs(due) do
    local p = tonumber(redis.call('HGET', state, 'p:' .. other) or '')
    if other ~= holder and p and p < priority then
      redis.call('ZADD', holders, text(now + gap), holder)
      redis.call('HSET', state, 'p:' .. holder, tostring(priority))
      expire(latest_of(now + gap))
      return {text(now + gap), text(now), '2'}
    end
  end
end
-- Start now if the starts that happened allow it; if the post before started
-- late, this one and every one behind it move back by as much, in order.
slot, cause = earliest_start(now)
if slot > now then
  local delta = slot - from
  local behind = redis.call('ZRANGEBYSCORE', holders, text(from), '+inf', 'WITHSCORES')
  for j = 1, #behind, 2 do
    if behind[j] ~= holder then
      redis.call('ZADD', holders, text(tonumber(behind[j + 1]) + delta), behind[j])
    end
  end
  for i = 1, n do redis.call('HSET', state, 'r' .. i, text(num('r' .. i) + delta)) end
  redis.call('ZADD', holders, text(slot), holder)
  redis.call('HSET', state, 'p:' .. holder, tostring(priority))
  expire(latest_of(slot))
  return {text(slot), text(now), tostring(cause)}
end
redis.call('ZREM', holders, holder)
redis.call('HDEL', state, 'p:' .. holder)
record_start()
expire(latest_of(now))
return {text(now), text(now), '0'}
"""
)

# ARGV after the rules: the refused holder, the hold's end (µs, Redis clock
# relative: seconds from now in µs). The platform refused for the account: no
# start before the hold ends, the refused holder goes first after it, and every
# waiting holder keeps its order behind it. Returns {slot, now, cause}.
_REFUSE = (
    _COMMON
    + """
local holder = ARGV[rest]
local ends = now + tonumber(ARGV[rest + 1])
if ends > hold then
  hold = ends
  redis.call('HSET', state, 'hold', text(hold))
end
redis.call('ZREM', holders, holder)
-- The waiting queue moves back as one, its first a gap after the refused post.
local waiting = redis.call('ZRANGE', holders, 0, -1, 'WITHSCORES')
local shift = 0
if #waiting > 0 then shift = math.max(0, hold + gap - math.max(tonumber(waiting[2]), now)) end
for j = 1, #waiting, 2 do
  redis.call('ZADD', holders, text(math.max(tonumber(waiting[j + 1]), now) + shift), waiting[j])
end
for i = 1, n do
  local r = math.max(num('r' .. i), now) + shift
  redis.call('HSET', state, 'r' .. i, text(math.max(r, hold + rules[i][1])))
  -- after a refusal the account starts again with no burst in hand
  redis.call('HSET', state, 'a' .. i, text(math.max(num('a' .. i), hold + rules[i][2])))
end
redis.call('ZADD', holders, text(hold), holder)
expire(latest_of(hold))
return {text(hold), text(now), '1'}
"""
)


@dataclass(frozen=True)
class Rule:
    """At most `burst` posts at once, then one every `interval` seconds."""

    interval: float
    burst: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be greater than 0")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    @classmethod
    def per_hour(cls, posts: float, burst: int, name: str = "") -> Rule:
        """`posts` an hour, `burst` of them at once: the refill leaves room for the
        burst, so no 60 minutes see more than `posts` posts."""
        refill = posts - burst if posts > burst else posts
        return cls(3600.0 / refill, burst, name)


@dataclass(frozen=True)
class Reservation:
    """A slot on the account's clock (microseconds of Redis time): post at `slot`.

    `cause`: what set the slot: None (nothing: post now), `"hold"` (the
    platform's own limit), or the name of the rule that did.
    """

    slot: int
    now: int
    cause: str | None = None

    @property
    def wait(self) -> float:
        """Seconds until the slot; 0.0: post now."""
        return max(0, self.slot - self.now) / 1_000_000


class AccountSlots:
    """The posting slots of one account, for every worker at once."""

    def __init__(self, redis: redis.Redis, key: str, rules: Sequence[Rule]) -> None:
        self.redis = redis
        self.keys = [key, f"{key}:holders"]
        self.rules = tuple(rules)
        self._reserve = redis.register_script(_RESERVE)
        self._refuse = redis.register_script(_REFUSE)

    def reserve(self, holder: str, priority: int = 0) -> Reservation:
        """Post now (the start is recorded) or the slot `holder` keeps until it comes.

        Waiting holders take the waiting slots in `priority` order (smaller
        first: the publishing order), whichever of them asked first.
        """
        return self._run(self._reserve, [holder, priority])

    def refuse(self, holder: str, wait: float) -> Reservation:
        """The platform refused `holder` for the account's limit: hold the whole
        account for `wait` seconds, `holder` first in line after it."""
        return self._run(self._refuse, [holder, max(0, round(wait * 1_000_000))])

    def _run(self, script: Any, args: list[Any]) -> Reservation:
        rules: list[int] = []
        for rule in self.rules:
            interval = max(1, round(rule.interval * 1_000_000))
            rules += [interval, (rule.burst - 1) * interval]
        slot, now, cause = script(keys=self.keys, args=[len(self.rules), *rules, *args])
        index = int(_text(cause))
        named = None if index == 0 else "hold" if index == 1 else self.rules[index - 2].name
        return Reservation(int(_text(slot)), int(_text(now)), named)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
