"""Pacing a remote channel: when a claimed delivery may post, or until when it is held.

A delivery is *held* (never failed, no attempt spent) before anything is sent:

- `quiet_hours = "23:00-07:00"`: wall-clock time in the channel's `timezone`
  option, else the newsroom's zone. A publish or a correction due inside the
  window waits until it ends.
- the account's slots (`publisher.coord.slots`): `min_spacing` seconds
  between the starts of two posts on one `account` (the channel name by
  default), and a budget of `posts_per_hour` (a channel type may declare a
  default: Weibo's 30), for every worker at once. A delivery that must wait
  reserves its slot and keeps it, so a backlog drains one per slot in order.
- the platform's own rate-limit answer (`RateLimitedError`: Weibo 10023,
  HTTP 429, WeChat 45009): the whole account is held until the platform's
  reset (`Pacer.refused`), the refused delivery first in line after it.

A retraction is never held back by our own rules: taking a post down is
urgent. Feeds are never paced: they are documents, not posts pushed to
phones. The engine asks `Pacer.deferral()` after claiming a delivery; the
store's `hold()` gives the attempt back and logs why the delivery waits.
When the account's slot has come, the pacer says when it began (`Slot`, on
Redis's clock): that is the start the promises are about, and the attempt
log records it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from publisher.config.pacing import PacingRules, pacing_rules
from publisher.coord.slots import AccountSlots, Reservation, Rule
from publisher.domain.errors import ConfigError, RateLimitedError
from publisher.domain.states import Correction, Kind

if TYPE_CHECKING:
    from channels.base import Channel
    from publisher.config.settings import ChannelConfig, Settings
    from publisher.store import Claim

#: A hold longer than this is not given a countdown task (a broker holds an
#: ETA task only up to its visibility timeout): the sweeper releases it when due.
COUNTDOWN_LIMIT = 900.0
#: How long the platform's rate-limit answer holds an account when it does not say.
DEFAULT_HOLD = 60.0
#: An account with no rules of ours (no spacing, no budget) can only be stopped by
#: the platform's hold; once Redis said there is none, this process posts on it
#: for this long without asking again. A hold another worker places meanwhile is
#: seen this much later at most: a post or two more meet the platform's limit
#: and are held then, no attempt spent. Asking on every post cost a fast
#: platform's drain a sixth of its CPU.
CLEAR_FOR = 0.5


@dataclass(frozen=True)
class Deferral:
    """Do not send yet: hold until `until` (UTC); `reason` goes in the attempt log."""

    until: datetime
    reason: str


@dataclass(frozen=True)
class Slot:
    """Send now: this post's slot on the account began at `started` (UTC, Redis's
    clock, the one every worker shares)."""

    started: datetime


class Pacer:
    """Whether a claimed delivery must wait before it is sent, and until when."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._rules: dict[str, PacingRules] = {}
        #: One `AccountSlots` per (channel, new post or edit): built once per process.
        self._accounts: dict[tuple[str, bool], AccountSlots] = {}
        #: Accounts with no rules of ours known to be free of a hold, until (monotonic).
        self._clear_until: dict[str, float] = {}

    def rules(self, config: ChannelConfig) -> PacingRules:
        rules = self._rules.get(config.name)
        if rules is None:
            rules = self._rules[config.name] = pacing_rules(config, self.settings.timezone)
        return rules

    def deferral(
        self, claim: Claim, channel: Channel, now: datetime | None = None
    ) -> Deferral | Slot | None:
        """Quiet hours first (no Redis), then the account's slots.

        None: nothing paces this delivery; a `Slot`: send now, in the slot
        the account gave it.

        `now` is the clock quiet hours are read on (tests pass one); slots
        run on Redis's clock. A slot is reserved only when the delivery is
        not held by quiet hours, so a night does not hoard slots.
        """
        if channel.is_feed or claim.kind == Kind.RETRACT:
            return None
        rules = self.rules(channel.config)
        if rules.quiet_hours is not None:
            ends = rules.quiet_hours.release_at(now or datetime.now(UTC))
            if ends is not None:
                return Deferral(ends, f"held: quiet hours until {rules.quiet_hours.wall(ends)}")
        slots = self._slots(channel, rules, new_post=_new_post(claim, channel))
        if slots is None:
            return None
        account = slots.keys[0]
        if not slots.rules and self._clear_until.get(account, 0.0) > time.monotonic():
            return None
        reservation = slots.reserve(_holder(claim), claim.delivery_id)
        if reservation.wait <= 0:
            if not slots.rules:  # only the platform's hold could have stopped it
                self._clear_until[account] = time.monotonic() + CLEAR_FOR
                return None
            return Slot(datetime.fromtimestamp(reservation.now / 1_000_000, UTC))
        return self._held(rules, reservation)

    def refused(self, claim: Claim, channel: Channel, error: RateLimitedError) -> Deferral:
        """The platform refused for the account's own limit: hold the whole account
        until its reset, this delivery first in line after it."""
        wait = error.retry_after if error.retry_after is not None else DEFAULT_HOLD
        rules = self.rules(channel.config)
        slots = self._slots(channel, rules, new_post=_new_post(claim, channel))
        if slots is not None:
            self._clear_until.pop(slots.keys[0], None)
        if slots is None:  # nothing shared to hold the account with: hold this one
            until = datetime.now(UTC) + timedelta(seconds=wait)
            return Deferral(until, f"held: {error.reason}; until {_shown(rules, until)}")
        return self._held(rules, slots.refuse(_holder(claim), wait), error.reason)

    def _slots(
        self, channel: Channel, rules: PacingRules, *, new_post: bool
    ) -> AccountSlots | None:
        """The account's slots with the rules that apply to this delivery (an
        in-place edit is not a new post: only the platform's hold applies)."""
        built = self._accounts.get((channel.name, new_post))
        if built is not None:
            return built
        redis = channel.context.redis
        spaced = [Rule(rules.min_spacing, 1, "spacing")] if rules.min_spacing else []
        budget = self.budget(channel)
        budgets = [Rule.per_hour(*budget, name="budget")] if budget else []
        applied = [*spaced, *budgets] if new_post else []
        if redis is None:
            if spaced:
                raise ConfigError(f"channels.{channel.name}.min_spacing: needs Redis to send")
            return None  # no shared budget to count with: the platform's own limit guards
        key = self.settings.key("slots", channel.type_name, rules.account)
        built = self._accounts[(channel.name, new_post)] = AccountSlots(redis, key, applied)
        return built

    def budget(self, channel: Channel) -> tuple[float, int] | None:
        """The account's posts an hour and burst: the table's, else the type's default."""
        rules = self.rules(channel.config)
        per_hour = rules.posts_per_hour or channel.posts_per_hour
        if per_hour is None:
            return None
        return per_hour, rules.posts_burst or max(1, int(per_hour // 6))

    def _held(self, rules: PacingRules, reservation: Reservation, why: str = "") -> Deferral:
        until = datetime.now(UTC) + timedelta(seconds=reservation.wait)
        shown = _shown(rules, until)
        account = rules.account
        if reservation.cause == "hold":
            detail = f"{why}; " if why else "the platform's rate limit; "
            reason = f"held: {detail}account {account} until {shown}"
        elif reservation.cause == "budget":
            reason = f"held: the budget of account {account}; its slot is at {shown}"
        elif reservation.cause == "spacing":
            reason = f"held: spacing on account {account} until {shown}"
        else:  # woken before its slot: it keeps its place
            reason = f"held: its slot on account {account} is at {shown}"
        return Deferral(until, reason)


def _holder(claim: Claim) -> str:
    return f"delivery:{claim.delivery_id}"


def _shown(rules: PacingRules, until: datetime) -> str:
    zone = ZoneInfo(rules.zone_name) if rules.zone_name else UTC
    return f"{until.astimezone(zone):%H:%M:%S} {rules.zone_name or 'UTC'}"


def _new_post(claim: Claim, channel: Channel) -> bool:
    """Spacing counts posts followers see arrive, not an in-place edit of one."""
    edit = claim.kind == Kind.PUBLISH and claim.remote_id and channel.correction == Correction.EDIT
    return not edit
