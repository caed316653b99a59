"""The reads the API and /metrics make that `Store` does not offer yet.

These are kept together, and as they were written, so the move of all SQL into
the store package can take them over in one piece; until then this is the one
place the web layer speaks SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import and_, case, exists, func, select

from publisher.domain.states import State
from publisher.store import Store
from publisher.store.models import (
    ArticleRow,
    ArticleVersionRow,
    AttemptRow,
    DeliveryRow,
    MediaRow,
)
from publisher.worker.celery_app import all_queues
from publisher.worker.runtime import Runtime

#: Attempt durations, in seconds, for the /metrics histogram.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Outcomes a worker writes; editors' entries in the log ("retry" by someone,
#: "cancelled") carry the editor's name as actor and are not attempts.
WORKER_OUTCOMES = ("delivered", "retry", "failed")
#: Kombu keeps one Redis list per priority step; unprioritised tasks use step 0.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


def _delivery_filters(
    states: Sequence[State] | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    article_id: str | None = None,
) -> list[Any]:
    where: list[Any] = []
    if states:
        where.append(DeliveryRow.state.in_([str(s) for s in states]))
    if channel:
        where.append(DeliveryRow.channel == channel)
    if since is not None:
        where.append(DeliveryRow.updated_at >= since)
    if until is not None:
        where.append(DeliveryRow.updated_at < until)
    if article_id:
        where.append(DeliveryRow.article_id == article_id)
    return where


def list_deliveries(
    store: Store, where: list[Any], limit: int, offset: int
) -> tuple[list[DeliveryRow], int]:
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(DeliveryRow).where(*where)) or 0
        rows = session.scalars(
            select(DeliveryRow)
            .where(*where)
            .order_by(DeliveryRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows), int(total)


def list_articles(
    store: Store,
    *,
    states: Sequence[State] | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[ArticleRow, str | None, str | None]], int]:
    where: list[Any] = []
    if since is not None:
        where.append(ArticleRow.created_at >= since)
    if until is not None:
        where.append(ArticleRow.created_at < until)
    if states or channel:
        matching = _delivery_filters(states, channel, None, None)
        where.append(exists().where(DeliveryRow.article_id == ArticleRow.id, *matching))
    title = ArticleVersionRow.data["title"].as_string()
    url = ArticleVersionRow.data["url"].as_string()
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(ArticleRow).where(*where)) or 0
        rows = session.execute(
            select(ArticleRow, title, url)
            .join(
                ArticleVersionRow,
                and_(
                    ArticleVersionRow.article_id == ArticleRow.id,
                    ArticleVersionRow.version == ArticleRow.current_version,
                ),
            )
            .where(*where)
            .order_by(ArticleRow.created_at.desc(), ArticleRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [(row, t, u) for row, t, u in rows], int(total)


def delivery_ids_in(store: Store, state: State, channel: str | None) -> list[int]:
    query = select(DeliveryRow.id).where(DeliveryRow.state == str(state)).order_by(DeliveryRow.id)
    if channel:
        query = query.where(DeliveryRow.channel == channel)
    with store.session() as session:
        return list(session.scalars(query))


def media_created_at(store: Store, media_id: str) -> datetime | None:
    """When these bytes were first stored: /media's Last-Modified. `Store.read_media`
    returns the bytes and their type only."""
    with store.session() as session:
        return session.scalar(select(MediaRow.created_at).where(MediaRow.id == media_id))


class StoreCollector:
    """Prometheus metrics read at scrape time from the store and the broker, so
    every API on every machine reports the same numbers."""

    def __init__(self, runtime: Runtime, broker: redis.Redis) -> None:
        self.runtime = runtime
        self.broker = broker  # a client with timeouts: a scrape must not hang

    def collect(self) -> Iterator[Metric]:
        store = self.runtime.store
        with store.session() as session:
            counts = session.execute(
                select(DeliveryRow.channel, DeliveryRow.state, func.count()).group_by(
                    DeliveryRow.channel, DeliveryRow.state
                )
            ).all()
            durations = session.execute(self._duration_query()).all()
            retries = session.execute(
                select(
                    DeliveryRow.channel,
                    AttemptRow.actor.is_(None),
                    func.count(),
                )
                .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
                .where(AttemptRow.outcome == "retry")
                .group_by(DeliveryRow.channel, AttemptRow.actor.is_(None))
            ).all()

        deliveries = GaugeMetricFamily(
            "publisher_deliveries", "Deliveries by channel and state.", labels=["channel", "state"]
        )
        seen = {(channel, state) for channel, state, _ in counts}
        for channel, state, n in counts:
            deliveries.add_metric([channel, state], n)
        for channel in self.runtime.settings.channels:  # zeros, so rates have a baseline
            for state in State:
                if (channel, state.value) not in seen:
                    deliveries.add_metric([channel, state.value], 0)
        yield deliveries

        histogram = HistogramMetricFamily(
            "publisher_attempt_duration_seconds",
            "Duration of delivery attempts, by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for channel, outcome, total_ms, count, *cumulative in durations:
            buckets = [
                (str(b), int(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", int(count)))
            histogram.add_metric([channel, outcome], buckets, float(total_ms or 0) / 1000)
        yield histogram

        counter = CounterMetricFamily(
            "publisher_retries",
            "Retries: automatic (a retryable failure) or by an editor.",
            labels=["channel", "by"],
        )
        for channel, automatic, n in retries:
            counter.add_metric([channel, "automatic" if automatic else "editor"], n)
        yield counter

        yield from self._broker()

    @staticmethod
    def _duration_query() -> Any:
        ms = AttemptRow.duration_ms
        return (
            select(
                DeliveryRow.channel,
                AttemptRow.outcome,
                func.sum(ms),
                func.count(),
                *(func.sum(case((ms <= b * 1000, 1), else_=0)) for b in DURATION_BUCKETS),
            )
            .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
            .where(AttemptRow.outcome.in_(WORKER_OUTCOMES), AttemptRow.actor.is_(None))
            .group_by(DeliveryRow.channel, AttemptRow.outcome)
        )

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("publisher_broker_up", "1 if Redis answered this scrape.")
        depth = GaugeMetricFamily(
            "publisher_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        prefix = self.runtime.settings.redis_prefix + "celery:"
        try:
            with self.broker.pipeline(transaction=False) as pipe:
                queues = all_queues()
                for queue in queues:
                    for step in PRIORITY_STEPS:
                        pipe.llen(prefix + queue + (f"{PRIORITY_SEP}{step}" if step else ""))
                sizes = pipe.execute()
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        per_queue = len(PRIORITY_STEPS)
        for i, queue in enumerate(queues):
            depth.add_metric([queue], sum(sizes[i * per_queue : (i + 1) * per_queue]))
        yield depth
