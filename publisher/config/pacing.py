"""Pacing options of a `[channels.NAME]` table, parsed and checked when settings load.

- `quiet_hours = "23:00-07:00"`: wall-clock time in the channel's `timezone`
  option, else the newsroom's zone. A publish or a correction due inside the
  window waits until it ends.
- `min_spacing = 600`: seconds between the starts of two posts on one
  `account` (the channel name by default), for every worker at once.
- `posts_per_hour = 30`, `posts_burst = 5`: the account's budget (a channel
  type may have a default: Weibo's is 30 an hour, a burst of a sixth).

The decision to hold a claimed delivery is `publisher.delivery.pacing`'s; the
shared slots live in `publisher.coord.slots`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from publisher.domain.errors import ConfigError, InputError
from publisher.domain.times import load_zone

if TYPE_CHECKING:
    from publisher.config.channel import ChannelConfig

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


#: The keys that pace a channel (feeds take none of them).
PACING_KEYS = ("quiet_hours", "min_spacing", "posts_per_hour", "posts_burst")


@dataclass(frozen=True)
class PacingRules:
    """One channel's pacing options, parsed and checked."""

    quiet_hours: QuietHours | None = None
    min_spacing: float | None = None
    #: The account's budget; None: the channel type's default (or no budget).
    posts_per_hour: float | None = None
    posts_burst: int | None = None
    account: str = ""
    #: For showing times in the attempt log; None: UTC.
    zone_name: str | None = None


def pacing_rules(config: ChannelConfig, newsroom_timezone: str | None) -> PacingRules:
    """Read `quiet_hours`, `min_spacing`, `posts_per_hour`, `posts_burst`, `timezone`
    and `account`; ConfigError names the key."""
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
    per_hour = config.option("posts_per_hour")
    if per_hour is not None and (
        isinstance(per_hour, bool) or not isinstance(per_hour, int | float) or not per_hour > 0
    ):
        raise ConfigError(f"{where}.posts_per_hour: must be a number greater than 0")
    burst = config.option("posts_burst")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ConfigError(f"{where}.posts_burst: must be a whole number ≥ 1")

    return PacingRules(
        quiet_hours=quiet,
        min_spacing=float(spacing) if spacing is not None else None,
        posts_per_hour=float(per_hour) if per_hour is not None else None,
        posts_burst=burst,
        account=str(config.option("account") or config.name),  # as the Weibo bucket reads it
        zone_name=zone_name,
    )


def check_pacing(
    channels: Mapping[str, ChannelConfig], newsroom_timezone: str | None, config_path: Path
) -> None:
    """Refuse bad pacing options when settings load, not at the first delivery.

    Whether a channel type may be paced at all is the channel's own fact
    (`Channel.is_feed`), checked where channels are built (`channels.build_channel`).
    """
    for config in channels.values():
        try:
            pacing_rules(config, newsroom_timezone)
        except ConfigError as exc:
            raise ConfigError(f"{config_path}: {exc}") from None


def paced_option(config: ChannelConfig) -> str | None:
    """The first pacing key a channel table sets, or None."""
    for key in PACING_KEYS:
        if config.option(key) is not None:
            return key
    return None
