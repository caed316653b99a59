"""The database's side of /metrics: aggregates read at scrape time, so every
API on every machine reports the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from publisher.store.base import StoreBase
from publisher.store.models import AttemptRow, DeliveryRow

#: Outcomes a worker writes; editors' entries in the log ("retry" by someone,
#: "cancelled") carry the editor's name as actor and are not attempts.
WORKER_OUTCOMES = ("delivered", "retry", "failed")


@dataclass(frozen=True)
class StoreMetrics:
    #: (channel, state, count)
    deliveries: list[tuple[str, str, int]]
    #: (channel, outcome, total ms, count, then one cumulative count per bucket)
    durations: list[tuple[Any, ...]]
    #: (channel, automatic?, count): automatic retries have no actor
    retries: list[tuple[str, bool, int]]


class MetricsSide(StoreBase):
    def metrics(self, buckets: Sequence[float]) -> StoreMetrics:
        """Deliveries by channel and state, worker attempts' durations as
        cumulative counts at each of `buckets` (seconds), and retries."""
        ms = AttemptRow.duration_ms
        durations = (
            select(
                DeliveryRow.channel,
                AttemptRow.outcome,
                func.sum(ms),
                func.count(),
                *(func.sum(case((ms <= b * 1000, 1), else_=0)) for b in buckets),
            )
            .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
            .where(AttemptRow.outcome.in_(WORKER_OUTCOMES), AttemptRow.actor.is_(None))
            .group_by(DeliveryRow.channel, AttemptRow.outcome)
        )
        automatic = AttemptRow.actor.is_(None)
        with self.session() as session:
            counts = session.execute(
                select(DeliveryRow.channel, DeliveryRow.state, func.count()).group_by(
                    DeliveryRow.channel, DeliveryRow.state
                )
            ).all()
            timed = session.execute(durations).all()
            retries = session.execute(
                select(DeliveryRow.channel, automatic, func.count())
                .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
                .where(AttemptRow.outcome == "retry")
                .group_by(DeliveryRow.channel, automatic)
            ).all()
        return StoreMetrics(
            deliveries=[(c, s, int(n)) for c, s, n in counts],
            durations=[tuple(r) for r in timed],
            retries=[(c, bool(a), int(n)) for c, a, n in retries],
        )
