"""The worker's side: claim a delivery under a lease, checkpoint its steps,
record its outcome (delivered, retrying, failed) or hold it for its slot.

A worker owns a delivery only while its lease token matches; every write
here is fenced by that token and by the row still being `sending`, so a
worker that was presumed dead and comes back cannot overwrite the outcome of
the one that replaced it. A claim and an outcome are one statement each.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, or_, select

from publisher.domain.states import Kind, State
from publisher.store.base import StoreBase
from publisher.store.ledger import claimable as ledger_claimable
from publisher.store.ledger import fenced, take
from publisher.store.models import ArticleRow, AttemptRow, DeliveryRow
from publisher.store.notifications import new_notification
from publisher.store.records import Claim, PlannedNotification, utcnow
from publisher.store.transitions import keep, move

_CLAIM_COLUMNS = (
    DeliveryRow.channel,
    DeliveryRow.channel_type,
    DeliveryRow.article_id,
    DeliveryRow.article_version,
    DeliveryRow.attempts,
    DeliveryRow.max_attempts,
    DeliveryRow.payload,
    DeliveryRow.checkpoint,
    DeliveryRow.outcome_unknown,
    DeliveryRow.kind,
    DeliveryRow.remote_id,
)


class WorkerSide(StoreBase):
    def claim(
        self, delivery_id: int, lease_seconds: float, now: datetime | None = None
    ) -> Claim | None:
        """Take a delivery for one attempt, or None if it is not ours to take.

        Claimable: pending; retrying or held and due; sending whose lease expired (its
        worker died, so that attempt's outcome is unknown); scheduled whose
        time has come (the countdown task `arm_schedules` queued fires on time,
        without waiting for the sweeper to release it).
        """
        now = now or utcnow()
        when = or_(
            ledger_claimable(DeliveryRow, now),
            and_(DeliveryRow.state == State.SCHEDULED, DeliveryRow.publish_at <= now),
        )
        with self.session() as session, session.begin():
            taken = take(
                session, DeliveryRow, delivery_id, when, lease_seconds, now, _CLAIM_COLUMNS,
                # Taking over from a worker that died mid-send: it may have sent.
                outcome_unknown=case(
                    (DeliveryRow.state == State.SENDING, 1), else_=DeliveryRow.outcome_unknown
                ),
            )  # fmt: skip
        if taken is None:
            return None
        token, row = taken
        return Claim(
            delivery_id=row.id,
            token=token,
            channel=row.channel,
            channel_type=row.channel_type,
            article_id=row.article_id,
            article_version=row.article_version,
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            payload=dict(row.payload or {}),
            checkpoint=dict(row.checkpoint or {}),
            outcome_unknown=bool(row.outcome_unknown),
            kind=row.kind,
            remote_id=row.remote_id,
        )

    def save_checkpoint(self, claim: Claim, data: dict[str, Any]) -> bool:
        with self.session() as session, session.begin():
            return keep(
                session, DeliveryRow, State.SENDING,
                where=fenced(DeliveryRow, claim.delivery_id, claim.token),
                values=dict(checkpoint=data, updated_at=utcnow()),
            )  # fmt: skip

    def record_delivered(
        self,
        claim: Claim,
        *,
        remote_id: str,
        remote_url: str | None,
        started_at: datetime,
        duration_ms: int,
        actor: str | None = None,
        notes: list[str] | None = None,
    ) -> bool:
        """Mark delivered; if the article changed meanwhile, go again with the new version.

        The version check is part of the fenced UPDATE, so a new version written
        while this one was in flight is never marked delivered unseen. The
        attempt's message is where the post lives, followed by the channel's
        `notes` (e.g. "body image x.jpg left out"), so the log says what was
        delivered differently from what was written.
        """
        now = utcnow()
        values: dict[str, Any] = dict(
            remote_id=remote_id,
            remote_url=remote_url,
            delivered_at=now,
            last_error=None,
            last_code=None,
            outcome_unknown=0,
            lease_token=None,
            lease_until=None,
            next_attempt_at=now,
            enqueued_at=None,
            updated_at=now,
        )
        mine = fenced(DeliveryRow, claim.delivery_id, claim.token)
        same = DeliveryRow.article_version == claim.article_version
        with self.session() as session, session.begin():
            moved = move(
                session, DeliveryRow, State.DELIVERED,
                where=[*mine, same], source=State.SENDING, values=values,
            ) or move(
                session, DeliveryRow, State.PENDING,
                where=[*mine, ~same], source=State.SENDING, values=values,
            )  # fmt: skip
            if not moved:
                return False
            session.add(
                AttemptRow(
                    delivery_id=claim.delivery_id,
                    number=claim.attempt,
                    started_at=started_at,
                    duration_ms=duration_ms,
                    outcome="delivered",
                    message="; ".join(p for p in (remote_url, *(notes or [])) if p) or None,
                    actor=actor,
                )
            )
            return True

    def record_failure(
        self,
        claim: Claim,
        *,
        outcome: str,
        reason: str,
        code: str | None,
        http_status: int | None,
        started_at: datetime,
        duration_ms: int,
        retry_at: datetime | None,
        outcome_unknown: bool,
        notifications: Sequence[PlannedNotification] = (),
    ) -> list[int] | None:
        """Log a failed attempt; `retry_at` None means failed for good.

        `notifications` are written in the same transaction (a crash cannot
        keep the failure and lose its notice); their ids are returned for
        enqueueing after commit. None: the lease was lost, nothing written.
        """
        now = utcnow()
        values: dict[str, Any] = dict(
            last_error=reason,
            last_code=code,
            next_attempt_at=retry_at,
            outcome_unknown=1 if outcome_unknown else 0,
            lease_token=None,
            lease_until=None,
            enqueued_at=now if retry_at else None,
            updated_at=now,
        )
        mine = fenced(DeliveryRow, claim.delivery_id, claim.token)
        # A post that was in flight when its article was retracted is not tried
        # again: the retraction already cancelled everything that had not gone out.
        retracted = exists().where(
            ArticleRow.id == DeliveryRow.article_id, ArticleRow.retracted_at.is_not(None)
        )
        posts = DeliveryRow.kind != Kind.RETRACT
        with self.session() as session, session.begin():
            if retry_at is None:
                moved = move(
                    session, DeliveryRow, State.FAILED, where=mine, source=State.SENDING,
                    values=values,
                )  # fmt: skip
            else:
                moved = move(
                    session, DeliveryRow, State.RETRYING,
                    where=[*mine, ~and_(posts, retracted)], source=State.SENDING, values=values,
                ) or move(
                    session, DeliveryRow, State.CANCELLED,
                    where=[*mine, posts, retracted], source=State.SENDING,
                    values={**values, "enqueued_at": None},
                )  # fmt: skip
            if not moved:
                return None
            session.add(
                AttemptRow(
                    delivery_id=claim.delivery_id,
                    number=claim.attempt,
                    started_at=started_at,
                    duration_ms=duration_ms,
                    outcome=outcome,
                    http_status=http_status,
                    platform_code=code,
                    message=reason,
                )
            )
            rows = [new_notification(claim.delivery_id, plan, now) for plan in notifications]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def hold(self, claim: Claim, *, until: datetime, reason: str, armed: bool = True) -> bool:
        """Hold a claimed delivery until its slot, `until`: not a failure.

        A rate-limit budget, the platform's own rate-limit answer, quiet hours
        and account spacing (`publisher.delivery.pacing`) make a delivery wait,
        never spend it: the claim's attempt is given back, the row waits as
        `held` with `until` as its `next_attempt_at` and `reason` as what the
        editor reads, and the attempt log says why (one entry for one wait, however
        often it is renewed). `armed`: a countdown task
        is enqueued for `until`; False leaves the release to the sweeper, which
        takes it the moment it is due. Fenced like every write; False if the
        lease was lost and nothing was written.
        """
        now = utcnow()
        with self.session() as session, session.begin():
            moved = move(
                session, DeliveryRow, State.HELD,
                where=fenced(DeliveryRow, claim.delivery_id, claim.token), source=State.SENDING,
                values=dict(
                    attempts=claim.attempt - 1,
                    next_attempt_at=until,
                    last_error=reason,
                    lease_token=None,
                    lease_until=None,
                    enqueued_at=now if armed else None,
                    updated_at=now,
                ),
            )  # fmt: skip
            if not moved:
                return False
            last = session.scalars(
                select(AttemptRow)
                .where(AttemptRow.delivery_id == claim.delivery_id)
                .order_by(AttemptRow.id.desc())
                .limit(1)
            ).first()
            if last is not None and last.outcome == "held" and last.number == claim.attempt - 1:
                # Still waiting, no attempt between: one entry, renewed, says where it
                # stands (a queue that moves back wakes its waiters at their old slots).
                last.started_at, last.message = now, reason
                return True
            session.add(
                AttemptRow(
                    delivery_id=claim.delivery_id,
                    number=claim.attempt - 1,
                    started_at=now,
                    duration_ms=0,
                    outcome="held",
                    message=reason,
                )
            )
            return True
