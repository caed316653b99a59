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
from publisher.celery_app import CONTROL_QUEUE
from publisher.settings import Settings
from publisher.store import Enqueue

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, celery: Celery, redis_client: redis.Redis, settings: Settings) -> None:
        self.celery = celery
        self.redis = redis_client
        self.settings = settings

    def enqueue(self, items: Iterable[Enqueue]) -> int:
        sent = 0
        for item in items:
            try:
                self.celery.send_task(
                    "publisher.deliver",
                    args=[item.delivery_id],
                    queue=queue_for(item.channel_type),
                    countdown=item.countdown or None,
                    retry=False,
                )
                sent += 1
            except (OperationalError, redis.RedisError, OSError) as exc:
                log.warning(
                    "broker unavailable, delivery %s left for the sweeper: %s",
                    item.delivery_id,
                    type(exc).__name__,
                )
        return sent

    def notify(self, notification_ids: Iterable[int], countdown: float = 0.0) -> int:
        """Hand failure notifications to the broker, on the control queue."""
        sent = 0
        for notification_id in notification_ids:
            try:
                self.celery.send_task(
                    "publisher.notify",
                    args=[notification_id],
                    queue=CONTROL_QUEUE,
                    countdown=countdown or None,
                    retry=False,
                )
                sent += 1
            except (OperationalError, redis.RedisError, OSError) as exc:
                log.warning(
                    "broker unavailable, notification %s left for the sweeper: %s",
                    notification_id,
                    type(exc).__name__,
                )
        return sent

    def request_feed_rebuild(self, channel: str) -> bool:
        """Coalesce rebuilds: one is scheduled per burst of deliveries, not one each.

        The flag is cleared by the rebuild as it starts, so a delivery that
        lands during a rebuild schedules the next one.
        """
        key = self.settings.key("feed-rebuild", channel)
        try:
            # The flag outlives the debounce only briefly: if the rebuild task is
            # lost with a killed worker, the sweeper's next request gets through.
            ttl = max(5, int(self.settings.feed_debounce * 10))
            if not self.redis.set(key, "1", nx=True, ex=ttl):
                return False
            self.celery.send_task(
                "publisher.rebuild_feed",
                args=[channel],
                queue=CONTROL_QUEUE,
                countdown=self.settings.feed_debounce,
                retry=False,
            )
            return True
        except (OperationalError, redis.RedisError, OSError) as exc:
            log.warning(
                "could not schedule a rebuild of %s (%s); the sweeper will",
                channel,
                type(exc).__name__,
            )
            return False

    def rebuild_started(self, channel: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(self.settings.key("feed-rebuild", channel))
