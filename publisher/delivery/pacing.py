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
attempt back and logs why the delivery waits. When the account's slot has
come, the pacer says when it began (`Slot`, on Redis's clock): that is the
start the spacing promise is about, and the attempt log records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from publisher.config.pacing import PacingRules, pacing_rules
from publisher.coord.spacing import SpacingSlots
from publisher.domain.errors import ConfigError
from publisher.domain.states import Correction, Kind

if TYPE_CHECKING:
    from channels.base import Channel
    from publisher.config.settings import ChannelConfig, Settings
    from publisher.store import Claim

#: A deferral longer than this is not given a countdown task (a broker holds an
#: ETA task only up to its visibility timeout): the sweeper releases it when due.
COUNTDOWN_LIMIT = 900.0


@dataclass(frozen=True)
class Deferral:
    """Do not send yet: wait until `until` (UTC); `reason` goes in the attempt log."""

    until: datetime
    reason: str


@dataclass(frozen=True)
class Slot:
    """Send now: this post's slot on the account began at `started` (UTC, Redis's
    clock, the one every worker shares), at least `min_spacing` after the one before."""

    started: datetime


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
    ) -> Deferral | Slot | None:
        """Quiet hours first (no Redis), then the account's spacing.

        None: nothing paces this delivery; a `Slot`: send now, in the slot
        the spacing reserved.

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
        reservation = slots.reserve(f"delivery:{claim.delivery_id}")
        wait = reservation.wait
        if wait <= 0:
            return Slot(datetime.fromtimestamp(reservation.now / 1_000_000, UTC))
        until = datetime.now(UTC) + timedelta(seconds=wait)
        zone = ZoneInfo(rules.zone_name) if rules.zone_name else UTC
        shown = f"{until.astimezone(zone):%H:%M:%S} {rules.zone_name or 'UTC'}"
        return Deferral(until, f"deferred: spacing on account {rules.account} until {shown}")


def _new_post(claim: Claim, channel: Channel) -> bool:
    """Spacing counts posts followers see arrive, not an in-place edit of one."""
    edit = claim.kind == Kind.PUBLISH and claim.remote_id and channel.correction == Correction.EDIT
    return not edit
