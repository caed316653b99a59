"""The beat's recurring work beyond the sweeper: partner feed polls and syndication runs.

One beat entry, `publisher.periodic`, runs every few seconds on a worker: it
claims the feeds that are due (each poll then runs as its own
`publisher.ingest` task, so a slow partner holds up nothing else) and runs
the syndication jobs whose scheduled time has come. Both are decided from
the database, so restarting or replacing the beat neither skips nor repeats
anything; the beat lock (`publisher.beatlock`) keeps it to one beat anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from publisher.ingest import Ingestor
from publisher.settings import Settings
from publisher.syndication import Syndicator

if TYPE_CHECKING:  # the runtime imports the Celery app, which imports this module
    from publisher.runtime import Runtime

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0


def tick_interval(settings: Settings) -> float | None:
    """Seconds between periodic ticks, or None when nothing is configured."""
    if not settings.ingest and not settings.syndication:
        return None
    shortest = min((feed.every for feed in settings.ingest.values()), default=TICK_SECONDS)
    return max(1.0, min(TICK_SECONDS, shortest))


def beat_entries(settings: Settings, queue: str) -> dict[str, dict[str, Any]]:
    interval = tick_interval(settings)
    if interval is None:
        return {}
    return {
        "periodic": {
            "task": "publisher.periodic",
            "schedule": interval,
            "options": {"queue": queue, "expires": interval * 5},
        }
    }


def run_periodic(runtime: Runtime, now: datetime | None = None) -> dict[str, Any]:
    """One tick: hand due feed polls to the broker, run due syndication jobs."""
    from publisher.celery_app import CONTROL_QUEUE

    now = now or datetime.now(UTC)
    polls = Ingestor(runtime).claim_due(now)
    for name in polls:
        try:
            runtime.celery.send_task(
                "publisher.ingest", args=[name], queue=CONTROL_QUEUE, retry=False
            )
        except (OperationalError, redis.RedisError, OSError) as exc:
            # The feed is polled again at its next slot.
            log.warning("broker unavailable, poll of %s skipped: %s", name, type(exc).__name__)
    runs = Syndicator(runtime).run_due(now)
    return {"polls": polls, "runs": [(r.job, r.scheduled_for.isoformat(), r.state) for r in runs]}


def register(app: Celery) -> None:
    from publisher.runtime import current_runtime

    @app.task(name="publisher.periodic", acks_late=True)
    def periodic() -> dict[str, Any]:
        return run_periodic(current_runtime(app))

    @app.task(name="publisher.ingest", acks_late=True)
    def ingest(feed: str) -> dict[str, Any]:
        return Ingestor(current_runtime(app)).poll(feed).as_dict()
