"""Pacing a remote channel: quiet hours and a minimum spacing between posts.

Two optional options of a `[channels.NAME]` table hold a delivery back
before anything is sent, without spending one of its attempts:

- `quiet_hours = "23:00-07:00"`: wall-clock time in the channel's `timezone`
  option, else the newsroom's zone. A publish or a correction due inside the
  window waits until it ends.
- `min_spacing = 600`: seconds between the starts of two posts on one
  `account` (the channel name by default), for every worker at once, through
  Redis. An in-place edit of a delivered post is not a new post.

A retraction is never held back: taking a post down is urgent. Feeds are
never paced: they are documents, not posts pushed to phones. The engine asks
`Pacer.deferral()` after claiming a delivery; the store's `defer()` gives the
attempt back and logs why the delivery waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from publisher.article import load_zone
from publisher.errors import ConfigError, InputError
from publisher.states import Correction, Kind

if TYPE_CHECKING:
    from collections.abc import Mapping

    import redis

    from channels.base import Channel
    from publisher.settings import ChannelConfig, Settings
    from publisher.store import Claim

#: A deferral longer than this is not given a countdown task (a broker holds an
#: ETA task only up to its visibility timeout): the sweeper releases it when due.
COUNTDOWN_LIMIT = 900.0

_WALL = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def _wall_time(text: str) -> time:
    match = _WALL.match(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a time of day such as 07:00")
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant the wall clock in `zone` reaches `wall` on `day`.

    A wall time the autumn change repeats counts at its first occurrence. One
    the spring change skips is reached when the clock jumps past it, at the
    change itself (02:30 on the New York spring day: 03:00 EDT).
    """
    local = datetime.combine(day, wall, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant  # exists; fold=0 is the first of a repeated time
    # Skipped: read with the offset after the change (fold=1) it is an instant
    # before the change, with the one before (fold=0) an instant after it. The
    # change lies between; find it to the second (changes fall on whole seconds).
    low, high = sorted((local.replace(fold=1).astimezone(UTC), instant))
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


@dataclass(frozen=True)
class QuietHours:
    """A daily window of wall-clock time in one zone; `end` before `start` crosses midnight.

    Each night's window is one stretch of real time, from the instant the
    wall clock reaches `start` to the instant it reaches `end`, so a
    daylight-saving change makes it an hour shorter or longer, never
    split in two or skipped.
    """

    start: time
    end: time
    zone: ZoneInfo
    zone_name: str

    @classmethod
    def parse(cls, text: str, zone_name: str) -> QuietHours:
        start_text, sep, end_text = text.partition("-")
        if not sep:
            raise ValueError(f"{text!r} is not a window such as 23:00-07:00")
        start, end = _wall_time(start_text), _wall_time(end_text)
        if start == end:
            raise ValueError(f"{text!r} starts and ends at the same time")
        return cls(start, end, ZoneInfo(zone_name), zone_name)

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    def release_at(self, now: datetime) -> datetime | None:
        """When the window `now` falls in ends (UTC), or None outside the window."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        today = now.astimezone(self.zone).date()
        for day in (today - timedelta(days=1), today):
            opens = _instant(day, self.start, self.zone)
            closes_on = day + timedelta(days=1) if self.crosses_midnight else day
            closes = _instant(closes_on, self.end, self.zone)
            if opens <= now < closes:
                return closes
        return None

    def wall(self, instant: datetime) -> str:
        """`07:00 Asia/Shanghai`: an instant as the channel's wall clock shows it."""
        local = instant.astimezone(self.zone)
        shown = f"{local:%H:%M:%S}" if local.second else f"{local:%H:%M}"
        return f"{shown} {self.zone_name}"


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


@dataclass(frozen=True)
class PacingRules:
    """One channel's pacing options, parsed and checked."""

    quiet_hours: QuietHours | None = None
    min_spacing: float | None = None
    account: str = ""
    #: For showing times in the attempt log; None: UTC.
    zone_name: str | None = None


def pacing_rules(config: ChannelConfig, newsroom_timezone: str | None) -> PacingRules:
    """Read `quiet_hours`, `min_spacing`, `timezone` and `account`; ConfigError names the key."""
    where = f"channels.{config.name}"
    zone_name = config.option("timezone")
    if zone_name is not None:
        if not isinstance(zone_name, str):
            raise ConfigError(f"{where}.timezone: must be an IANA time zone name")
        try:
            load_zone("timezone", zone_name.strip())
        except InputError as exc:
            raise ConfigError(f"{where}.timezone: {exc.problem}") from None
        zone_name = zone_name.strip()
    zone_name = zone_name or newsroom_timezone

    quiet: QuietHours | None = None
    window = config.option("quiet_hours")
    if window is not None:
        if not isinstance(window, str):
            raise ConfigError(f'{where}.quiet_hours: must be a string such as "23:00-07:00"')
        if zone_name is None:
            raise ConfigError(
                f"{where}.quiet_hours: needs a time zone: set {where}.timezone or the "
                "newsroom's ([newsroom] timezone, PUBLISHER_TIMEZONE)"
            )
        try:
            quiet = QuietHours.parse(window, zone_name)
        except ValueError as exc:
            raise ConfigError(f"{where}.quiet_hours: {exc}") from None

    spacing = config.option("min_spacing")
    if spacing is not None and (
        isinstance(spacing, bool) or not isinstance(spacing, int | float) or not spacing > 0
    ):
        raise ConfigError(f"{where}.min_spacing: must be a number of seconds greater than 0")

    return PacingRules(
        quiet_hours=quiet,
        min_spacing=float(spacing) if spacing is not None else None,
        account=str(config.option("account") or config.name),  # as the Weibo bucket reads it
        zone_name=zone_name,
    )


def check_pacing(
    channels: Mapping[str, ChannelConfig], newsroom_timezone: str | None, config_path: Path
) -> None:
    """Refuse bad pacing options when settings load, not at the first delivery."""
    from channels import CHANNEL_TYPES  # the registry imports settings: load it late

    for config in channels.values():
        try:
            rules = pacing_rules(config, newsroom_timezone)
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None
        kind = CHANNEL_TYPES.get(config.type)
        paced = rules.quiet_hours is not None or rules.min_spacing is not None
        if paced and kind is not None and kind.is_feed:
            option = "quiet_hours" if rules.quiet_hours is not None else "min_spacing"
            raise ConfigError(
                f"{config_path}: channels.{config.name}.{option}: a {config.type} feed is a "
                "document, not a post pushed to anyone: feeds are never paced"
            )


@dataclass(frozen=True)
class Deferral:
    """Do not send yet: wait until `until` (UTC); `reason` goes in the attempt log."""

    until: datetime
    reason: str


class Pacer:
    """Whether a claimed delivery must wait before it is sent, and until when."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._rules: dict[str, PacingRules] = {}

    def rules(self, config: ChannelConfig) -> PacingRules:
        rules = self._rules.get(config.name)
        if rules is None:
            rules = self._rules[config.name] = pacing_rules(config, self.settings.timezone)
        return rules

    def deferral(
        self, claim: Claim, channel: Channel, now: datetime | None = None
    ) -> Deferral | None:
        """Quiet hours first (no Redis), then the account's spacing.

        `now` is the clock quiet hours are read on (tests pass one); spacing
        runs on Redis's clock. A spacing slot is reserved only when the
        delivery is not held by quiet hours, so a night does not hoard slots.
        """
        if channel.is_feed or claim.kind == Kind.RETRACT:
            return None
        rules = self.rules(channel.config)
        if rules.quiet_hours is not None:
            ends = rules.quiet_hours.release_at(now or datetime.now(UTC))
            if ends is not None:
                return Deferral(ends, f"deferred: quiet hours until {rules.quiet_hours.wall(ends)}")
        if rules.min_spacing is None or not _new_post(claim, channel):
            return None
        if channel.context.redis is None:
            raise ConfigError(f"channels.{channel.name}.min_spacing: needs Redis to send")
        key = self.settings.key("spacing", channel.type_name, rules.account)
        slots = SpacingSlots(channel.context.redis, key, rules.min_spacing)
        wait = slots.reserve(f"delivery:{claim.delivery_id}").wait
        if wait <= 0:
            return None
        until = datetime.now(UTC) + timedelta(seconds=wait)
        zone = ZoneInfo(rules.zone_name) if rules.zone_name else UTC
        shown = f"{until.astimezone(zone):%H:%M:%S} {rules.zone_name or 'UTC'}"
        return Deferral(until, f"deferred: spacing on account {rules.account} until {shown}")


def _new_post(claim: Claim, channel: Channel) -> bool:
    """Spacing counts posts followers see arrive, not an in-place edit of one."""
    edit = claim.kind == Kind.PUBLISH and claim.remote_id and channel.correction == Correction.EDIT
    return not edit
