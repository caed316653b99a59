"""The sweeper's side: release due schedules, arm countdowns, find what the
broker may have lost, and tell which feeds changed since they were built.

The database is the source of truth and Celery only the transport, so these
queries are what make a lost message, a killed worker or a restarted Redis
harmless: every due row is found again here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from publisher.domain.states import State
from publisher.store.base import StoreBase
from publisher.store.ledger import due, not_enqueued_since
from publisher.store.models import DeliveryRow, FeedDocumentRow
from publisher.store.records import Enqueue, utcnow
from publisher.store.transitions import move


class SweeperSide(StoreBase):
    def arm_schedules(
        self, *, within: float, article_id: str | None = None, now: datetime | None = None
    ) -> list[Enqueue]:
        """Scheduled deliveries due within `within` seconds, to enqueue with a countdown.

        The countdown task is claimed the moment its time comes, so a schedule is
        released on the second rather than on the sweeper's next tick. Each is
        armed once (`enqueued_at`); rescheduling clears that. If the task is lost
        the sweeper still releases the delivery when it is due.
        """
        now = now or utcnow()
        horizon = now + timedelta(seconds=within)
        where = [
            DeliveryRow.state == State.SCHEDULED,
            DeliveryRow.next_attempt_at <= horizon,
            DeliveryRow.enqueued_at.is_(None),
        ]
        if article_id is not None:
            where.append(DeliveryRow.article_id == article_id)
        with self.session() as session, session.begin():
            rows = session.execute(
                select(DeliveryRow.id, DeliveryRow.channel_type, DeliveryRow.next_attempt_at)
                .where(*where)
                .order_by(DeliveryRow.next_attempt_at)
                .limit(1000)
            ).all()
            if rows:
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_([r.id for r in rows]), *where)
                    .values(enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
            return [
                Enqueue(r.id, r.channel_type, max(0.0, (r.next_attempt_at - now).total_seconds()))
                for r in rows
            ]

    def collect_due(self, *, requeue_after: float, now: datetime | None = None) -> list[Enqueue]:
        """Release due schedules and pick what the broker may have lost.

        A delivery is re-enqueued when it is due (pending, retrying past its
        time, or sending past its lease) and was not enqueued within
        `requeue_after` seconds. Duplicates are harmless: a claim succeeds once.
        """
        now = now or utcnow()
        stale = now - timedelta(seconds=requeue_after)
        with self.session() as session, session.begin():
            move(
                session, DeliveryRow, State.PENDING,
                where=[DeliveryRow.publish_at <= now], source=State.SCHEDULED,
                values=dict(next_attempt_at=now, enqueued_at=None, updated_at=now),
            )  # fmt: skip
            rows = session.execute(
                select(DeliveryRow.id, DeliveryRow.channel_type)
                .where(due(DeliveryRow, now), not_enqueued_since(DeliveryRow, stale))
                .order_by(DeliveryRow.next_attempt_at)
                .limit(1000)
            ).all()
            if rows:
                session.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_([r.id for r in rows]))
                    .values(enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
            return [Enqueue(r.id, r.channel_type) for r in rows]

    def feed_changed_since_build(
        self, channel: str, *, older_than: float = 0.0, now: datetime | None = None
    ) -> bool:
        """A delivery of the channel changed after its documents were built.

        `older_than` (the sweeper's) ignores changes younger than that many
        seconds: the publish that made them asked for its own rebuild, and a
        sweep that asked again while that rebuild ran would only queue a
        spaced follow-up behind it, which is what an idle publish then waited for.
        """
        changes = select(func.max(DeliveryRow.updated_at)).where(DeliveryRow.channel == channel)
        if older_than > 0:
            cutoff = (now or utcnow()) - timedelta(seconds=older_than)
            changes = changes.where(DeliveryRow.updated_at <= cutoff)
        with self.session() as session:
            changed = session.scalar(changes)
            built = session.scalar(
                select(func.min(FeedDocumentRow.built_at)).where(FeedDocumentRow.channel == channel)
            )
            return changed is not None and (built is None or changed > built)
