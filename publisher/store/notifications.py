"""Failure notifications: their own small ledger, with a delivery's states
minus scheduled and cancelled, and the same claim, fencing and sweeping
(`publisher.store.ledger`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from publisher.domain.states import State
from publisher.store.base import StoreBase
from publisher.store.ledger import claimable, due, fenced, not_enqueued_since, take
from publisher.store.models import NotificationRow
from publisher.store.records import NotificationClaim, PlannedNotification, utcnow
from publisher.store.transitions import born, move

_CLAIM_COLUMNS = (
    NotificationRow.delivery_id,
    NotificationRow.target,
    NotificationRow.event,
    NotificationRow.body,
    NotificationRow.attempts,
    NotificationRow.max_attempts,
)


class NotificationSide(StoreBase):
    def claim_notification(
        self, notification_id: int, lease_seconds: float, now: datetime | None = None
    ) -> NotificationClaim | None:
        """Take a notification for one attempt, or None if it is not ours to take."""
        now = now or utcnow()
        when = claimable(NotificationRow, now)
        with self.session() as session, session.begin():
            token, taken = take(
                session, NotificationRow, NotificationRow.id == notification_id, when,
                lease_seconds, now, _CLAIM_COLUMNS,
            )  # fmt: skip
        if not taken:
            return None
        row = taken[0]
        return NotificationClaim(
            notification_id=row.id,
            token=token,
            delivery_id=row.delivery_id,
            target=row.target,
            event=row.event,
            body=row.body,
            attempt=row.attempts,
            max_attempts=row.max_attempts,
        )

    def record_notification(
        self,
        claim: NotificationClaim,
        *,
        http_status: int | None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """The attempt's outcome: delivered (no `error`), retrying (`retry_at`) or failed.

        Fenced by the claim's token; False if another worker took it over.
        """
        now = utcnow()
        state = State.DELIVERED if error is None else State.RETRYING if retry_at else State.FAILED
        with self.session() as session, session.begin():
            moved = move(
                session, NotificationRow, state,
                where=fenced(NotificationRow, claim.notification_id, claim.token),
                source=State.SENDING,
                values=dict(
                    last_error=error,
                    last_status=http_status,
                    next_attempt_at=retry_at,
                    lease_token=None,
                    lease_until=None,
                    enqueued_at=now if retry_at else None,
                    delivered_at=now if state == State.DELIVERED else None,
                    updated_at=now,
                ),
            )  # fmt: skip
            return bool(moved)

    def collect_due_notifications(
        self, *, requeue_after: float, now: datetime | None = None
    ) -> list[int]:
        """Notifications the broker may have lost, as `collect_due` finds deliveries."""
        now = now or utcnow()
        stale = now - timedelta(seconds=requeue_after)
        when = due(NotificationRow, now)
        not_recent = not_enqueued_since(NotificationRow, stale)
        with self.session() as session, session.begin():
            ids = list(
                session.scalars(
                    select(NotificationRow.id)
                    .where(when, not_recent)
                    .order_by(NotificationRow.next_attempt_at)
                    .limit(1000)
                )
            )
            if ids:
                session.execute(
                    update(NotificationRow)
                    .where(NotificationRow.id.in_(ids))
                    .values(enqueued_at=now)
                    .execution_options(synchronize_session=False)
                )
            return ids

    def notifications(
        self,
        *,
        delivery_id: int | None = None,
        states: Iterable[str] | None = None,
        limit: int = 100,
    ) -> list[NotificationRow]:
        """Notifications, newest first: state, attempts, last error and status."""
        query = select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)
        if delivery_id is not None:
            query = query.where(NotificationRow.delivery_id == delivery_id)
        if states:
            query = query.where(NotificationRow.state.in_(list(states)))
        with self.session() as session:
            return list(session.scalars(query))


def new_notification(delivery_id: int, plan: PlannedNotification, now: datetime) -> NotificationRow:
    """A notification row, written in the failure's own transaction."""
    row = NotificationRow(
        delivery_id=delivery_id,
        target=plan.target,
        event=plan.event,
        attempts=0,
        max_attempts=plan.max_attempts,
        body=plan.body,
        next_attempt_at=now,
        enqueued_at=now,  # enqueued right after commit; the sweeper covers a loss
        created_at=now,
        updated_at=now,
    )
    return born(row, State.PENDING)
