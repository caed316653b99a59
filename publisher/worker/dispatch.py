"""Handing work to the broker, after the store has committed it.

Enqueue failures are logged and swallowed on purpose: the delivery is safe
in the store and the sweeper will enqueue it again, so a Redis outage delays
deliveries instead of failing a publish.

Feed deliveries are never tasks of their own: a feed item is delivered by
the rebuild that puts it in a live document, so for them the dispatcher
makes sure one rebuild of their channel is pending. Rebuilds coalesce on
the leading edge (`request_feed_rebuild`, `rebuild_started`,
`rebuild_finished`): an idle channel rebuilds at once; requests that arrive
while a rebuild runs fold into one follow-up rebuild, due
`feed_rebuild_spacing` after it; at most one rebuild of a channel runs at a
time, across every worker. A burst costs a few rebuilds a second however
many articles it carries. Redis holds that
state with expiry times, so a worker killed mid-rebuild blocks nothing for
longer than the rebuild lease: after it, the sweeper's next request (it
asks for every feed with waiting or changed deliveries) gets through.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from channels import CHANNEL_TYPES
from channels.base import queue_for
from publisher.config.settings import Settings
from publisher.store import Enqueue
from publisher.worker.celery_app import CONTROL_QUEUE

log = logging.getLogger(__name__)

#: A queued rebuild's flag lives this long: a request within it is already covered
#: by the rebuild in the queue; after it (the task was lost) a request gets through.
QUEUED_TTL_SECONDS = 10
#: A round that completed at most this many deliveries was no burst (see `rebuild_finished`).
QUIET_ROUND = 1
#: Most deliveries one publish or sweep hands to the broker in one pipeline.
BATCH_SIZE = 1000

# KEYS: queued, running, again, for each channel in turn. ARGV: ttl seconds.
# One flag per channel: 1 = send a rebuild task now. One round trip for them all.
_REQUEST = """
local out = {}
for i = 1, #KEYS, 3 do
  local send = 0
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('SET', KEYS[i + 2], '1', 'EX', ARGV[1])
  elseif redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    send = 1
  end
  out[#out + 1] = send
end
return out
"""
# KEYS: queued, running, again. ARGV: token, lease ms. 1 = this task builds.
_START = """
redis.call('DEL', KEYS[1])
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return 0
"""
# KEYS: running, again, queued. ARGV: token, ttl seconds. Releases the channel;
# 1 = requests came in during the round: queue the one follow-up that covers them.
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('SET', KEYS[3], '1', 'EX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


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
        self._request = self.redis.register_script(_REQUEST)
        self._start = self.redis.register_script(_START)
        self._finish = self.redis.register_script(_FINISH)
        self._release = self.redis.register_script(_RELEASE)

    def enqueue(self, items: Iterable[Enqueue]) -> int:
        """Queue deliveries on their channel type's queue, all in one broker round
        trip; feed deliveries become one rebuild request per channel. Returns how
        many deliveries were handed over."""
        remote: list[Enqueue] = []
        now: set[str] = set()
        later: dict[str, float] = {}
        feed_count = 0
        for item in items:
            channels = self.feeds_of_type.get(item.channel_type)
            if not channels:
                remote.append(item)
                continue
            feed_count += 1
            for name in channels:
                if item.countdown > 0:  # a scheduled item: a rebuild when it is due
                    later[name] = min(later.get(name, item.countdown), item.countdown)
                else:
                    now.add(name)
        self.request_feed_rebuilds(sorted(now))
        for name, countdown in later.items():
            self._send_one("publisher.rebuild_feed", name, CONTROL_QUEUE, countdown,
                           f"rebuild of {name}")  # fmt: skip
        return feed_count + self._send_batch(remote)

    def _send_batch(self, items: list[Enqueue]) -> int:
        """Every delivery in one pipeline (kombu's `Producer.batch`), not one call each."""
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
        except (OperationalError, redis.RedisError, OSError) as exc:
            log.warning("broker unavailable, %d deliveries left for the sweeper: %s",
                        len(items), type(exc).__name__)  # fmt: skip
            return 0

    def notify(self, notification_ids: Iterable[int], countdown: float = 0.0) -> int:
        """Hand failure notifications to the broker, on the control queue."""
        return sum(
            self._send_one("publisher.notify", n, CONTROL_QUEUE, countdown, f"notification {n}")
            for n in notification_ids
        )

    def request_feed_rebuild(self, channel: str) -> bool:
        """Make sure one rebuild of `channel` is pending; True if a task was sent.

        Nothing is sent when a rebuild is already queued (it will read the store
        after this caller's commit) or running (its follow-up covers this).
        """
        return bool(self.request_feed_rebuilds([channel]))

    def request_feed_rebuilds(self, channels: list[str]) -> list[str]:
        """`request_feed_rebuild` for several channels in one Redis round trip;
        returns the channels a rebuild task was sent for."""
        if self.offline or not channels:
            return []
        try:
            keys = [key for channel in channels for key in self._keys(channel)]
            flags = self._request(keys=keys, args=[QUEUED_TTL_SECONDS])
        except redis.RedisError as exc:
            log.warning("broker unavailable, rebuild of %s left for the sweeper: %s",
                        ", ".join(channels), type(exc).__name__)  # fmt: skip
            return []
        due = [channel for channel, flag in zip(channels, flags, strict=True) if flag]
        if len(due) == 1:
            return due if self._send_one("publisher.rebuild_feed", due[0], CONTROL_QUEUE, 0.0,
                                         f"rebuild of {due[0]}") else []  # fmt: skip
        try:
            with self.celery.producer_or_acquire() as producer, producer.batch(BATCH_SIZE):
                for channel in due:
                    self.celery.send_task(
                        "publisher.rebuild_feed",
                        args=[channel],
                        queue=CONTROL_QUEUE,
                        producer=producer,
                        retry=False,
                    )
        except (OperationalError, redis.RedisError, OSError) as exc:
            log.warning("broker unavailable, rebuilds of %s left for the sweeper: %s",
                        ", ".join(due), type(exc).__name__)  # fmt: skip
            return []
        return due

    def rebuild_started(self, channel: str) -> str | None:
        """The rebuild task's lease token, or None when another rebuild of the
        channel is running (this request is folded into its next round)."""
        token = secrets.token_hex(8)
        keys = self._keys(channel)
        if self._start(keys=keys, args=[token, self._lease_ms]):
            return token
        return None

    def rebuild_finished(self, channel: str, token: str, covered: int | None = None) -> bool:
        """Release the channel; if requests came in during the round, queue the
        one follow-up rebuild that covers them all, due `feed_rebuild_spacing`
        from now (so a burst leaves the workers time for other work between
        rebuilds and folds more into each). True if one was queued.

        `covered`: deliveries the round completed. A quiet round (at most
        `QUIET_ROUND`) was no burst: its follow-up is due at once, so a publish
        that met the end of the previous one is not held for the spacing."""
        queued, running, again = self._keys(channel)
        quiet = covered is not None and covered <= QUIET_ROUND
        spacing = 0.0 if quiet else self.settings.feed_rebuild_spacing
        try:
            follow_up = self._finish(
                keys=[running, again, queued], args=[token, QUEUED_TTL_SECONDS]
            )
        except redis.RedisError:
            return False  # the lease expires; the sweeper asks again
        if not follow_up:
            return False
        return self._send_one("publisher.rebuild_feed", channel, CONTROL_QUEUE, spacing,
                              f"rebuild of {channel}")  # fmt: skip

    def rebuild_abandoned(self, channel: str, token: str) -> None:
        """A failed round releases the lease; the sweeper asks again."""
        running = self._keys(channel)[1]
        with contextlib.suppress(redis.RedisError):  # the lease expires on its own
            self._release(keys=[running], args=[token])

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.feed_rebuild_lease * 1000)

    def _keys(self, channel: str) -> list[str]:
        return [
            self.settings.key("feed-rebuild", channel),
            self.settings.key("feed-rebuild-running", channel),
            self.settings.key("feed-rebuild-again", channel),
        ]

    def _send_one(self, task: str, arg: object, queue: str, countdown: float, what: str) -> bool:
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
