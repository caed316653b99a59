"""The wiring of one process: settings, store, Redis, Celery, channels, engine.

Built once per process (`Runtime(settings)`), or lazily per Celery worker
process after the fork (`current_runtime`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery

from channels import build_channel, check_matrix
from channels.base import Channel, ChannelContext
from channels.feed import FeedChannel
from publisher.config.settings import Settings
from publisher.coord.broker import locate_redis
from publisher.delivery import feeds, publishing
from publisher.delivery.drain import drain
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.notify import Notifier
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError
from publisher.store import PublishResult, Store
from publisher.worker.celery_app import configure_celery
from publisher.worker.dispatch import Dispatcher

log = logging.getLogger(__name__)

#: Scheduled deliveries due within this many seconds get a countdown task, so
#: they go out on the second. Well inside the broker's visibility timeout (an
#: ETA task held longer is redelivered) and several sweeper ticks ahead.
ARM_AHEAD_SECONDS = 60.0


class Runtime:
    def __init__(
        self, settings: Settings, celery: Celery | None = None, *, start_redis: bool = True
    ) -> None:
        """`start_redis=False`: use the data dir's embedded Redis only if it is
        already up (a short CLI command must not leave a server behind); work
        it cannot hand over waits in the store for the sweeper."""
        check_matrix(settings.channels, settings.syndication)
        self.settings = settings
        self.location = locate_redis(settings, start=start_redis)
        self.redis = redis.Redis.from_url(self.location.client_url)
        self.store = Store(settings.database_url)
        self.celery = celery or configure_celery(settings, start_redis=start_redis)
        self.context = ChannelContext(
            settings,
            self.redis,
            read_media=self.store.read_media,
            save_media=self.store.save_media,
        )
        self.channels: dict[str, Channel] = {
            name: build_channel(config, self.context) for name, config in settings.channels.items()
        }
        # A stopped embedded Redis stays stopped: hand nothing over, fast.
        offline = not start_redis and settings.embedded_redis and not _answers(self.redis)
        self.dispatcher = Dispatcher(self.celery, self.redis, settings, offline=offline)
        self.engine = DeliveryEngine(settings, self.store, self.channels, self.dispatcher)
        self.notifier = Notifier(settings, self.store, self.dispatcher)

    def close(self) -> None:
        self.store.dispose()
        self.redis.close()

    def publish(
        self,
        article: Article,
        *,
        only: Sequence[str] | None = None,
        actor: str | None = None,
        awaiting: bool = False,
    ) -> PublishResult:
        """`awaiting`: a writer's article under `[newsroom] approval`, which waits
        for an editor's `approve` before anything goes out."""
        result = publishing.publish(
            article, self.store, self.channels, only=only, actor=actor, awaiting=awaiting
        )
        armed = (
            self.store.arm_schedules(within=self.arm_ahead, article_id=result.article_id)
            if article.publish_at is not None
            else []
        )
        self.dispatcher.enqueue([*result.to_enqueue, *armed])
        return result

    def approve(
        self, article_id: str, *, actor: str | None = None, version: int | None = None
    ) -> None:
        """Let a writer's awaiting version out: each delivery to its time, or now."""
        row, article, deliveries = self.store.article(article_id)
        names = {d.channel for d in deliveries if d.channel in self.channels}
        plans = publishing.plan(article, [self.channels[n] for n in sorted(names)])
        # The plans are this version's: approving is refused if another came meanwhile.
        version = row.current_version if version is None else version
        queued = self.store.approve(article_id, plans, actor=actor, version=version)
        armed = self.store.arm_schedules(within=self.arm_ahead, article_id=article_id)
        self.dispatcher.enqueue([*queued, *armed])

    @property
    def arm_ahead(self) -> float:
        return max(ARM_AHEAD_SECONDS, 3 * self.settings.sweep_interval)

    def retract(self, article_id: str, *, actor: str | None = None) -> list[int]:
        """Cancel what has not gone out and remove what has; returns the removal ids."""
        removable = {name: channel.can_delete for name, channel in self.channels.items()}
        queued = self.store.retract(article_id, removable, actor=actor)
        self.dispatcher.enqueue(queued)
        return [item.delivery_id for item in queued]

    def feed_channel(self, name: str) -> FeedChannel:
        channel = self.channels.get(name)
        if not isinstance(channel, FeedChannel):
            raise ConfigError(f"{name!r} is not a feed channel")
        return channel

    def rebuild_feed(self, name: str) -> int:
        """One rebuild, unless another of this channel is running (then this
        request is folded into its follow-up): returns 1 if built, else 0."""
        channel = self.feed_channel(name)
        token = self.dispatcher.rebuild_started(name)
        if token is None:
            return 0
        try:
            done = feeds.rebuild_feed(self.settings, self.store, channel)
        except BaseException:
            self.dispatcher.rebuild_abandoned(name, token)
            raise
        self.dispatcher.rebuild_finished(name, token, covered=done.covered)
        return 1

    def drain(self, channel_type: str) -> int:
        """Send the channel type's due deliveries (`publisher.delivery.drain`),
        unless its drains' places are all taken (then this request is folded
        into a running drain's follow-up): returns how many were tried."""
        drains = self.dispatcher.drains
        token = drains.started(channel_type)
        if token is None:
            return 0
        try:
            done = drain(self.engine, channel_type, renew=lambda: drains.renew(channel_type, token))
        except BaseException:
            drains.abandoned(channel_type, token)  # its rows' leases end; the sweeper goes on
            raise
        self.dispatcher.drain_finished(channel_type, token, tried=done.tried, more=done.more)
        return done.tried

    def sweep(self) -> dict[str, Any]:
        """Re-enqueue what is due but may have been lost; rebuild stale feeds."""
        due = self.store.collect_due(requeue_after=self.settings.requeue_after)
        due += self.store.arm_schedules(within=self.arm_ahead)
        sent = self.dispatcher.enqueue(due)
        notices = self.store.collect_due_notifications(requeue_after=self.settings.requeue_after)
        notified = self.dispatcher.notify(notices)
        stale = [
            name
            for name, channel in self.channels.items()
            if channel.is_feed
            and self.store.feed_changed_since_build(name, older_than=self.settings.sweep_interval)
        ]
        self.dispatcher.request_feed_rebuilds(stale)
        if due or notices:
            log.info("sweeper re-enqueued %d deliveries, %d notifications", sent, notified)
        return {"requeued": sent, "stale_feeds": stale, "notifications_requeued": notified}


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


_runtime: Runtime | None = None


def current_runtime(celery: Celery) -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(celery.publisher_settings, celery)
    return _runtime


def reset_runtime() -> None:
    global _runtime
    _runtime = None
