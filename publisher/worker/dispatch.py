"""Handing work to the broker, after the store has committed it.

Enqueue failures are logged and swallowed on purpose: the delivery is safe
in the store and the sweeper will enqueue it again, so a Redis outage delays
deliveries instead of failing a publish.

Work due now is never one task per delivery. A remote delivery due now is
sent by a drain of its channel type (`publisher.delivery.drain`): one task
claims a batch of due rows in one statement, sends them and records their
outcomes in one transaction, for as long as rows are due; publishing makes
sure a drain is pending. A feed delivery is delivered by the rebuild that
puts it in a live document, so for it the dispatcher makes sure one rebuild
of its channel is pending. Both coalesce on the leading edge
(`publisher.coord.coalesce`): an idle system starts at once; requests that
arrive while runs are going fold into one follow-up. At most one rebuild of
a channel runs at a time, its follow-up due `feed_rebuild_spacing` after it
(a burst costs a few rebuilds a second however many articles it carries);
up to `drains` drains of a channel type run at once, their follow-up at
once. Work due later (a retry's backoff, a held delivery's slot, a schedule)
is one countdown task per delivery, claimed by id when it fires.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from channels import CHANNEL_TYPES
from channels.base import queue_for
from publisher.config.settings import Settings
from publisher.coord.coalesce import Coalescer
from publisher.store import Enqueue
from publisher.worker.celery_app import CONTROL_QUEUE

log = logging.getLogger(__name__)

#: A round that completed at most this many deliveries was no burst (see `rebuild_finished`).
QUIET_ROUND = 1
#: Most tasks one publish or sweep hands to the broker in one pipeline.
BATCH_SIZE = 1000
REBUILD_TASK = "publisher.rebuild_feed"
DRAIN_TASK = "publisher.drain"
_BROKER_ERRORS = (OperationalError, redis.RedisError, OSError)


class Dispatcher:
    def __init__(
        self,
        celery: Celery,
        redis_client: redis.Redis,
        settings: Settings,
        *,
        offline: bool = False,
    ) -> None:
        """`offline`: no broker runs (a short CLI command on a stopped embedded
        Redis); nothing is sent, at once, instead of waiting out a connect
        timeout per task: the store holds the work for the sweeper."""
        self.celery = celery
        self.redis = redis_client
        self.settings = settings
        self.offline = offline
        # A delivery names its channel type, not its channel: a feed item wakes
        # every feed channel of its type (one, in any matrix seen so far).
        self.feeds_of_type: dict[str, list[str]] = defaultdict(list)
        for name, config in settings.channels.items():
            kind = CHANNEL_TYPES.get(config.type)
            if kind is not None and kind.is_feed:
                self.feeds_of_type[config.type].append(name)
        self.rebuilds = Coalescer(
            redis_client, settings.key, "feed-rebuild",
            parallel=1, lease_seconds=settings.feed_rebuild_lease,
        )  # fmt: skip
        self.drains = Coalescer(
            redis_client, settings.key, "drain",
            parallel=settings.drains, lease_seconds=settings.drain_lease,
        )  # fmt: skip

    def enqueue(self, items: Iterable[Enqueue]) -> int:
        """Hand deliveries to the broker, all in one round trip each way: due now,
        a drain request per channel type and a rebuild request per feed channel;
        due later, a countdown task each (feeds: one rebuild, when the first is
        due). Returns how many deliveries were handed over."""
        later: list[Enqueue] = []
        drains: dict[str, int] = defaultdict(int)
        now: set[str] = set()
        feeds_later: dict[str, float] = {}
        feed_count = 0
        for item in items:
            channels = self.feeds_of_type.get(item.channel_type)
            if not channels:
                if item.countdown > 0:
                    later.append(item)
                else:
                    drains[item.channel_type] += 1
                continue
            feed_count += 1
            for name in channels:
                if item.countdown > 0:  # a scheduled item: a rebuild when it is due
                    feeds_later[name] = min(feeds_later.get(name, item.countdown), item.countdown)
                else:
                    now.add(name)
        self.request_feed_rebuilds(sorted(now))
        for name, countdown in feeds_later.items():
            self._send_one(REBUILD_TASK, name, CONTROL_QUEUE, countdown, f"rebuild of {name}")
        covered = self.request_drains(sorted(drains))
        handed = sum(drains[kind] for kind in covered)
        return feed_count + handed + self._send_batch(later)

    def request_drains(self, channel_types: list[str]) -> list[str]:
        """Make sure a drain of each channel type will run after this caller's
        commit; returns the types that are covered (all, unless Redis is away)."""
        if self.offline or not channel_types:
            return []
        due = self._coalesced(self.drains, channel_types)
        if due is None:
            return []
        if due and not self._send_tasks(DRAIN_TASK, due, queue_for, "drain"):
            return [t for t in channel_types if t not in due]
        return channel_types

    def drain_finished(self, channel_type: str, token: str, *, tried: int, more: bool) -> bool:
        """Free the drain's place; if deliveries came due while it ran (or it
        stopped with work left), send the one follow-up that covers them, due
        `drain_spacing` from now after a busy round, so a burst's drains take
        batches rather than a row or two each, and at once after a quiet one.
        True if one was sent."""
        if not self.drains.finished(channel_type, token, more=more):
            return False
        spacing = 0.0 if tried <= QUIET_ROUND else self.settings.drain_spacing
        return self._send_one(DRAIN_TASK, channel_type, queue_for(channel_type), spacing,
                              f"drain of {channel_type}")  # fmt: skip

    def _send_batch(self, items: list[Enqueue]) -> int:
        """Countdown tasks in one pipeline (kombu's `Producer.batch`), not one call each."""
        if not items or self.offline:
            return 0
        try:
            with self.celery.producer_or_acquire() as producer, producer.batch(BATCH_SIZE):
                for item in items:
                    self.celery.send_task(
                        "publisher.deliver",
                        args=[item.delivery_id],
                        queue=queue_for(item.channel_type),
                        countdown=item.countdown or None,
                        producer=producer,
                        retry=False,
                    )
            return len(items)
        except _BROKER_ERRORS as exc:
            log.warning("broker unavailable, %d deliveries left for the sweeper: %s",
                        len(items), type(exc).__name__)  # fmt: skip
            return 0

    def _send_tasks(
        self, task: str, args: list[str], queue: Callable[[str], str], what: str
    ) -> bool:
        """One task per argument, in one pipeline."""
        if len(args) == 1:
            return self._send_one(task, args[0], queue(args[0]), 0.0, f"{what} of {args[0]}")
        try:
            with self.celery.producer_or_acquire() as producer, producer.batch(BATCH_SIZE):
                for arg in args:
                    self.celery.send_task(
                        task, args=[arg], queue=queue(arg), producer=producer, retry=False
                    )
        except _BROKER_ERRORS as exc:
            log.warning("broker unavailable, %s of %s left for the sweeper: %s",
                        what, ", ".join(args), type(exc).__name__)  # fmt: skip
            return False
        return True

    def _coalesced(self, coalescer: Coalescer, names: list[str]) -> list[str] | None:
        """The names a task must be sent for; None when Redis is away."""
        try:
            return coalescer.request(names)
        except redis.RedisError as exc:
            log.warning("broker unavailable, %s of %s left for the sweeper: %s",
                        coalescer.kind, ", ".join(names), type(exc).__name__)  # fmt: skip
            return None

    def notify(self, notification_ids: Iterable[int], countdown: float = 0.0) -> int:
        """Hand failure notifications to the broker, on the control queue."""
        return sum(
            self._send_one("publisher.notify", n, CONTROL_QUEUE, countdown, f"notification {n}")
            for n in notification_ids
        )

    def request_feed_rebuilds(self, channels: list[str]) -> list[str]:
        """Make sure one rebuild of each channel is pending, in one Redis round
        trip; returns the channels a rebuild task was sent for. Nothing is sent
        for a channel whose rebuild is already queued (it will read the store
        after this caller's commit) or running (its follow-up covers this)."""
        if self.offline or not channels:
            return []
        due = self._coalesced(self.rebuilds, channels)
        if not due:
            return []
        return due if self._send_tasks(REBUILD_TASK, due, _control, "rebuild") else []

    def rebuild_started(self, channel: str) -> str | None:
        """The rebuild task's lease token, or None when another rebuild of the
        channel is running (this request is folded into its next round)."""
        return self.rebuilds.started(channel)

    def rebuild_finished(self, channel: str, token: str, covered: int | None = None) -> bool:
        """Release the channel; if requests came in during the round, queue the
        one follow-up rebuild that covers them all, due `feed_rebuild_spacing`
        from now (so a burst leaves the workers time for other work between
        rebuilds and folds more into each). True if one was queued.

        `covered`: deliveries the round completed. A quiet round (at most
        `QUIET_ROUND`) was no burst: its follow-up is due at once, so a publish
        that met the end of the previous one is not held for the spacing."""
        quiet = covered is not None and covered <= QUIET_ROUND
        spacing = 0.0 if quiet else self.settings.feed_rebuild_spacing
        if not self.rebuilds.finished(channel, token):
            return False
        return self._send_one(REBUILD_TASK, channel, CONTROL_QUEUE, spacing,
                              f"rebuild of {channel}")  # fmt: skip

    def rebuild_abandoned(self, channel: str, token: str) -> None:
        """A failed round releases the lease; the sweeper asks again."""
        self.rebuilds.abandoned(channel, token)

    def _send_one(self, task: str, arg: object, queue: str, countdown: float, what: str) -> bool:
        """One task to the broker; an outage is logged, not raised (the sweeper retries)."""
        if self.offline:
            return False
        try:
            self.celery.send_task(
                task, args=[arg], queue=queue, countdown=countdown or None, retry=False
            )
            return True
        except _BROKER_ERRORS as exc:
            log.warning("broker unavailable, %s left for the sweeper: %s", what,
                        type(exc).__name__)  # fmt: skip
            return False


def _control(_: str) -> str:
    return CONTROL_QUEUE
