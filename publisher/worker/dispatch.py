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
up to `drains` drains of a channel type run at once, their follow-up due
`drain_spacing` after a busy one. After a busy round, or one that was itself
a follow-up, the next run of either waits its spacing, even one asked for
just after the round; after a quiet round (one item at most) that a request
started, the follow-up is due at once. Work due later (a retry's backoff, a
held delivery's slot, a schedule) is one countdown task per delivery,
claimed by id when it fires.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence

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

#: A round that completed at most this many deliveries was no burst (see `_follow_up`).
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
            spacing=settings.feed_rebuild_spacing,
        )  # fmt: skip
        self.drains = Coalescer(
            redis_client, settings.key, "drain",
            parallel=settings.drains, lease_seconds=settings.drain_lease,
            spacing=settings.drain_spacing,
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
        deliveries = [("publisher.deliver", item.delivery_id, queue_for(item.channel_type),
                       item.countdown) for item in later]  # fmt: skip
        sent = self._send_many(deliveries, f"{len(later)} deliveries")
        return feed_count + handed + (len(later) if sent else 0)

    def request_drains(self, channel_types: list[str]) -> list[str]:
        """Make sure a drain of each channel type will run after this caller's
        commit; returns the types that are covered (all, unless Redis is away)."""
        if self.offline or not channel_types:
            return []
        due = self._coalesced(self.drains, channel_types)
        if due is None:
            return []
        drains = [(DRAIN_TASK, kind, queue_for(kind), wait) for kind, wait in due.items()]
        if due and not self._send_many(drains, "drains of " + ", ".join(due)):
            return [t for t in channel_types if t not in due]
        return channel_types

    def drain_finished(self, channel_type: str, token: str, *, tried: int, more: bool) -> bool:
        """Free the drain's place; if deliveries came due while it ran (or it
        stopped with work left), send the one follow-up that covers them (see
        `_follow_up`: a busy round's waits `drain_spacing`, so a burst's drains
        take batches rather than a row or two each). True if one was sent."""
        return self._follow_up(
            self.drains, channel_type, token, (DRAIN_TASK, queue_for(channel_type)),
            covered=tried, more=more,
        )  # fmt: skip

    def _follow_up(
        self,
        coalescer: Coalescer,
        name: str,
        token: str,
        task: tuple[str, str],
        *,
        covered: int | None,
        more: bool = False,
    ) -> bool:
        """End a run of a coalesced job and send its follow-up if one is due: at
        once after a quiet round (at most `QUIET_ROUND` items) that a request
        started, so a request that met the end of such a round is not held
        back; after the job's spacing when the round was busy or was itself a
        follow-up (requests keep coming: a burst, however quick each round is).
        `task`: the task's name and queue."""
        busy = covered is None or covered > QUIET_ROUND
        countdown = coalescer.finished(name, token, more=more, busy=busy)
        if countdown is None:
            return False
        name_of_task, queue = task
        return self._send_one(name_of_task, name, queue, countdown,
                              f"{coalescer.kind} of {name}")  # fmt: skip

    def _send_many(self, tasks: Sequence[tuple[str, object, str, float]], what: str) -> bool:
        """Tasks (name, argument, queue, countdown) in one pipeline (kombu's
        `Producer.batch`), not one call each; an outage is logged, not raised."""
        if not tasks or self.offline:
            return False
        if len(tasks) == 1:
            return self._send_one(*tasks[0], what)
        try:
            with self.celery.producer_or_acquire() as producer, producer.batch(BATCH_SIZE):
                for task, arg, queue, countdown in tasks:
                    self.celery.send_task(
                        task, args=[arg], queue=queue, countdown=countdown or None,
                        producer=producer, retry=False,
                    )  # fmt: skip
        except _BROKER_ERRORS as exc:
            log.warning("broker unavailable, %s left for the sweeper: %s", what,
                        type(exc).__name__)  # fmt: skip
            return False
        return True

    def _coalesced(self, coalescer: Coalescer, names: list[str]) -> dict[str, float] | None:
        """The names a task must be sent for, with their countdowns; None when
        Redis is away."""
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
        rebuilds = [(REBUILD_TASK, channel, CONTROL_QUEUE, wait) for channel, wait in due.items()]
        return list(due) if self._send_many(rebuilds, "rebuilds of " + ", ".join(due)) else []

    def rebuild_started(self, channel: str) -> str | None:
        """The rebuild task's lease token, or None when another rebuild of the
        channel is running (this request is folded into its next round)."""
        return self.rebuilds.started(channel)

    def rebuild_finished(self, channel: str, token: str, covered: int | None = None) -> bool:
        """Release the channel; if requests came in during the round, queue the
        one follow-up rebuild that covers them all (see `_follow_up`: a busy
        round's waits `feed_rebuild_spacing`, so a burst leaves the workers time
        for other work between rebuilds and folds more into each). `covered`:
        deliveries the round completed. True if one was queued."""
        return self._follow_up(
            self.rebuilds, channel, token, (REBUILD_TASK, CONTROL_QUEUE),
            covered=covered,
        )  # fmt: skip

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
