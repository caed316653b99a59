"""The Celery app: Redis broker, one queue per channel type, reliability settings.

`acks_late` + `reject_on_worker_lost` + prefetch 1 make a killed worker's
task go back to the queue, but they are not enough on their own (a SIGKILL
can still lose or duplicate a message, and a Redis restart loses all of
them): the store's compare-and-set claim and the sweeper cover the rest.
"""

from __future__ import annotations

import redis
from celery import Celery
from kombu import Queue

from channels import CHANNEL_TYPES
from channels.base import queue_for
from publisher.config.settings import Settings
from publisher.coord.broker import locate_redis
from publisher.worker.schedule import beat_entries

CONTROL_QUEUE = "control"
#: Kombu keeps one Redis list per priority step; unprioritised tasks use step 0.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


def all_queues() -> list[str]:
    return [CONTROL_QUEUE, *(queue_for(t) for t in sorted(CHANNEL_TYPES))]


def queue_depths(client: redis.Redis, settings: Settings) -> dict[str, int]:
    """Tasks waiting in each Celery queue, read from the broker's Redis lists
    (`global_keyprefix` below, one list per priority step). Raises
    `redis.RedisError` or `OSError` when the broker does not answer."""
    prefix = settings.redis_prefix + "celery:"
    queues = all_queues()
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for step in PRIORITY_STEPS:
                pipe.llen(prefix + queue + (f"{PRIORITY_SEP}{step}" if step else ""))
        sizes = pipe.execute()
    per_queue = len(PRIORITY_STEPS)
    return {q: sum(sizes[i * per_queue : (i + 1) * per_queue]) for i, q in enumerate(queues)}


def configure_celery(settings: Settings, *, start_redis: bool = True) -> Celery:
    """The app as every process needs it to send tasks; `worker.app` adds the tasks."""
    # Beat keeps its schedule under the data dir, which nothing else creates when
    # both Redis and the database are remote.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    location = locate_redis(settings, start=start_redis)
    app = Celery("publisher", broker=location.broker_url, set_as_current=False)
    # A task must end before its lease does, or a second worker could take
    # the delivery while the first is still sending.
    hard_limit = max(1.0, settings.lease_seconds * 0.9)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_default_queue=CONTROL_QUEUE,
        task_queues=[Queue(name) for name in all_queues()],
        task_time_limit=hard_limit,
        task_soft_time_limit=max(0.5, hard_limit - 0.5),
        broker_transport_options={
            "global_keyprefix": settings.redis_prefix + "celery:",
            "visibility_timeout": 3600,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            "sweep": {
                "task": "publisher.sweep",
                "schedule": settings.sweep_interval,
                "options": {"queue": CONTROL_QUEUE, "expires": settings.sweep_interval * 5},
            },
            **beat_entries(settings, CONTROL_QUEUE),
        },
        # Sends only while holding the one-beat Redis lock (publisher/beatlock.py).
        beat_scheduler="publisher.worker.beatlock:GuardedScheduler",
        beat_schedule_filename=str(settings.data_dir / "beat-schedule"),
        timezone="UTC",
        enable_utc=True,
    )
    app.publisher_settings = settings
    return app
