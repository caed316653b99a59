"""Handing work to the broker, after the store has committed it.

Enqueue failures are logged and swallowed on purpose: the delivery is safe
in the store and the sweeper will enqueue it again, so a Redis outage delays
deliveries instead of failing a publish.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from channels.base import queue_for
from publisher.config.settings import Settings
from publisher.store import Enqueue
from publisher.worker.celery_app import CONTROL_QUEUE

log = logging.getLogger(__name__)


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

    def enqueue(self, items: Iterable[Enqueue]) -> int:
        """Queue deliveries on their channel type's queue; returns how many were sent."""
        return sum(self._deliver(item) for item in items)

    def _deliver(self, item: Enqueue) -> bool:
        queue, what = queue_for(item.channel_type), f"delivery {item.delivery_id}"
        return self._send("publisher.deliver", item.delivery_id, queue, item.countdown, what)

    def notify(self, notification_ids: Iterable[int], countdown: float = 0.0) -> int:
        """Hand failure notifications to the broker, on the control queue."""
        return sum(
            self._send("publisher.notify", n, CONTROL_QUEUE, countdown, f"notification {n}")
            for n in notification_ids
        )

    def request_feed_rebuild(self, channel: str) -> bool:
        """Coalesce rebuilds: one is scheduled per burst of deliveries, not one each.

        The flag is cleared by the rebuild as it starts, so a delivery that
        lands during a rebuild schedules the next one. It outlives the debounce
        only briefly: if the rebuild task is lost with a killed worker, the
        sweeper's next request gets through.
        """
        if self.offline:
            return False
        key = self.settings.key("feed-rebuild", channel)
        ttl = max(5, int(self.settings.feed_debounce * 10))
        try:
            if not self.redis.set(key, "1", nx=True, ex=ttl):
                return False
        except redis.RedisError as exc:
            log.warning("broker unavailable, rebuild of %s left for the sweeper: %s", channel,
                        type(exc).__name__)  # fmt: skip
            return False
        return self._send(
            "publisher.rebuild_feed", channel, CONTROL_QUEUE, self.settings.feed_debounce,
            f"rebuild of {channel}",
        )  # fmt: skip

    def _send(self, task: str, arg: object, queue: str, countdown: float, what: str) -> bool:
        """One task to the broker; an outage is logged, not raised (the sweeper retries)."""
        if self.offline:
            return False
        try:
            self.celery.send_task(
                task, args=[arg], queue=queue, countdown=countdown or None, retry=False
            )
            return True
        except (OperationalError, redis.RedisError, OSError) as exc:
            log.warning("broker unavailable, %s left for the sweeper: %s", what,
                        type(exc).__name__)  # fmt: skip
            return False

    def rebuild_started(self, channel: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(self.settings.key("feed-rebuild", channel))
