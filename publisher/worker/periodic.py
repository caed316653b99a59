"""The beat's recurring work beyond the sweeper: partner feed polls and syndication runs.

One beat entry, `publisher.periodic`, runs every few seconds on a worker: it
claims the feeds that are due (each poll then runs as its own
`publisher.ingest` task, so a slow partner holds up nothing else) and runs
the syndication jobs whose scheduled time has come. Both are decided from
the database, so restarting or replacing the beat neither skips nor repeats
anything; the beat lock (`publisher.worker.beatlock`) keeps it to one beat anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from publisher.jobs.ingest import Ingestor
from publisher.jobs.syndication import Syndicator
from publisher.worker.celery_app import CONTROL_QUEUE
from publisher.worker.runtime import Runtime, current_runtime

log = logging.getLogger(__name__)


def run_periodic(runtime: Runtime, now: datetime | None = None) -> dict[str, Any]:
    """One tick: hand due feed polls to the broker, run due syndication jobs."""
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
    @app.task(name="publisher.periodic", acks_late=True)
    def periodic() -> dict[str, Any]:
        return run_periodic(current_runtime(app))

    @app.task(name="publisher.ingest", acks_late=True)
    def ingest(feed: str) -> dict[str, Any]:
        return Ingestor(current_runtime(app)).poll(feed).as_dict()
