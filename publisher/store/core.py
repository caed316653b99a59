"""The delivery store: every read and write of articles, deliveries and attempts.

Writers of a delivery's state go through compare-and-set UPDATEs here and
nowhere else. A worker owns a delivery only while its lease token matches;
a write with a stale token changes nothing, so a worker that was presumed
dead and comes back cannot overwrite the outcome of the one that replaced it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from publisher.domain.article import Article
from publisher.domain.errors import InputError, NotFound
from publisher.domain.i18n import Phrase
from publisher.domain.states import CANCELLABLE, RETRIABLE, Correction, Kind, State
from publisher.store.db import create_db_engine, migrate
from publisher.store.models import (
    ArticleRow,
    ArticleVersionRow,
    AttemptRow,
    DeliveryRow,
    FeedDocumentRow,
    MediaRow,
    NotificationRow,
)

MAX_MEDIA_BYTES = 10 * 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlannedDelivery:
    """What publishing wants for one channel: its payload, formatted once."""

    channel: str
    channel_type: str
    max_attempts: int
    payload: dict[str, Any]
    correction: Correction = Correction.EDIT
    #: The follow-up post (FOLLOW_UP) or the corrected article (REPUBLISH).
    correction_payload: dict[str, Any] | None = None
    can_delete: bool = True


@dataclass(frozen=True)
class Claim:
    """A delivery a worker holds under a lease, with what it needs to send it."""

    delivery_id: int
    token: str
    channel: str
    channel_type: str
    article_id: str
    article_version: int
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    checkpoint: dict[str, Any]
    outcome_unknown: bool
    kind: str = Kind.PUBLISH
    remote_id: str | None = None  # set when this row was delivered before (an update)


@dataclass(frozen=True)
class Enqueue:
    """A delivery to hand to the broker, on its channel type's queue."""

    delivery_id: int
    channel_type: str
    countdown: float = 0.0


@dataclass(frozen=True)
class PlannedNotification:
    """A failure notification to write with the failure: its target and exact body."""

    target: str
    event: str
    body: str
    max_attempts: int


@dataclass(frozen=True)
class NotificationClaim:
    """A notification a worker holds under a lease, with what it needs to send it."""

    notification_id: int
    token: str
    delivery_id: int
    target: str
    event: str
    body: str
    attempt: int
    max_attempts: int


@dataclass
class PublishResult:
    article_id: str
    version: int
    created: bool
    changed: bool
    to_enqueue: list[Enqueue] = field(default_factory=list)
    #: Same content with another `publish_at`: deliveries still waiting were moved.
    rescheduled: bool = False


class Store:
    def __init__(self, database_url: str, *, engine: Engine | None = None) -> None:
        self.engine = engine or create_db_engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    def session(self) -> Session:
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- publishing -------------------------------------------------------

    def publish(
        self,
        article: Article,
        plans: Sequence[PlannedDelivery],
        *,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> PublishResult:
        """Store an article (or a new version of it) and its deliveries in one transaction.

        The same content again creates nothing. Changed content creates a new
        version; deliveries not yet delivered carry the new version, and
        delivered ones are re-sent where the channel updates in place.
        """
        now = now or utcnow()
        content_hash = article.content_hash()
        scheduled = article.publish_at is not None and article.publish_at > now
        with self.session() as session, session.begin():
            row = session.get(ArticleRow, article.id, with_for_update=True)
            created = row is None
            if row is None:
                row = ArticleRow(
                    id=article.id,
                    current_version=0,
                    published_at=article.published_at or article.publish_at or now,
                    created_at=now,
                    updated_at=now,
                    actor=actor,
                )
                session.add(row)
                session.flush()
            current = session.get(ArticleVersionRow, (article.id, row.current_version))
            changed = current is None or current.content_hash != content_hash
            if changed:
                row.current_version += 1
                row.updated_at = now
                row.retracted_at = None
                row.published_at = article.published_at or row.published_at
                session.add(
                    ArticleVersionRow(
                        article_id=article.id,
                        version=row.current_version,
                        content_hash=content_hash,
                        data=article.to_json(),
                        created_at=now,
                        actor=actor,
                    )
                )
                session.flush()
            existing = {
                (d.channel, d.kind): d
                for d in session.scalars(
                    select(DeliveryRow).where(DeliveryRow.article_id == article.id)
                )
            }
            result = PublishResult(article.id, row.current_version, created, changed)
            for plan in plans:
                delivery = existing.get((plan.channel, Kind.PUBLISH))
                if delivery is None:
                    delivery = _new_delivery(row, plan, article, now, scheduled)
                    session.add(delivery)
                elif not changed:
                    if not _reschedule(delivery, row, article, now, scheduled):
                        continue
                    _keep_schedule_in_version(current, article)
                    result.rescheduled = True
                elif delivery.state in (State.DELIVERED, State.SENDING) and (
                    plan.correction != Correction.EDIT
                ):
                    delivery = _correction(
                        existing.get((plan.channel, Kind.CORRECTION)), delivery, row, plan, now
                    )
                    session.add(delivery)
                elif not _apply_new_version(delivery, row, plan, article, now, scheduled):
                    continue
                session.flush()
                if delivery.state == State.PENDING:
                    delivery.enqueued_at = now
                    result.to_enqueue.append(Enqueue(delivery.id, delivery.channel_type))
            return result

    # -- the worker's side: claim, checkpoint, outcome --------------------

    def claim(
        self, delivery_id: int, lease_seconds: float, now: datetime | None = None
    ) -> Claim | None:
        """Take a delivery for one attempt, or None if it is not ours to take.

        Claimable: pending; retrying and due; sending whose lease expired (its
        worker died, so that attempt's outcome is unknown); scheduled whose
        time has come (the countdown task `arm_schedules` queued fires on time,
        without waiting for the sweeper to release it).
        """
        now = now or utcnow()
        token = secrets.token_hex(8)
        claimable = or_(
            _claimable(DeliveryRow, now),
            and_(DeliveryRow.state == State.SCHEDULED, DeliveryRow.publish_at <= now),
        )
        with self.session() as session, session.begin():
            taken = _take(
                session, DeliveryRow, delivery_id, claimable, token, lease_seconds, now,
                # Taking over from a worker that died mid-send: it may have sent.
                outcome_unknown=case(
                    (DeliveryRow.state == State.SENDING, 1), else_=DeliveryRow.outcome_unknown
                ),
            )  # fmt: skip
            if not taken:
                return None
            row = session.get_one(DeliveryRow, delivery_id, populate_existing=True)
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
            return self._fenced(session, claim, checkpoint=data, updated_at=utcnow()) == 1

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

        The attempt's message is where the post lives, followed by the
        channel's `notes` (e.g. "body image x.jpg left out"), so the log
        says what was delivered differently from what was written."""
        now = utcnow()
        with self.session() as session, session.begin():
            current = session.scalar(
                select(DeliveryRow.article_version).where(DeliveryRow.id == claim.delivery_id)
            )
            stale = current is not None and current != claim.article_version
            values: dict[str, Any] = dict(
                state=State.PENDING if stale else State.DELIVERED,
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
            if self._fenced(session, claim, **values) != 1:
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
            state=State.RETRYING if retry_at else State.FAILED,
            last_error=reason,
            last_code=code,
            next_attempt_at=retry_at,
            outcome_unknown=1 if outcome_unknown else 0,
            lease_token=None,
            lease_until=None,
            enqueued_at=now if retry_at else None,
            updated_at=now,
        )
        with self.session() as session, session.begin():
            if self._fenced(session, claim, **values) != 1:
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
            rows = [_new_notification(claim.delivery_id, plan, now) for plan in notifications]
            session.add_all(rows)
            session.flush()
            return [row.id for row in rows]

    def defer(self, claim: Claim, *, until: datetime, reason: str, armed: bool = True) -> bool:
        """Hold a claimed delivery back until `until`, before anything was sent.

        Quiet hours and account spacing (`publisher.delivery.pacing`) are not failures:
        the claim's attempt is given back, `reason` is logged, and the row
        waits as `retrying` (claimed, swept, cancelled and retracted like any
        retry) rather than `scheduled`, whose `publish_at` is the editor's.
        `armed`: a countdown task is enqueued for `until`; False leaves the
        release to the sweeper, which takes it the moment it is due. Fenced
        like every write; False if the lease was lost and nothing was written.
        """
        now = utcnow()
        with self.session() as session, session.begin():
            done = self._fenced(
                session,
                claim,
                state=State.RETRYING,
                attempts=claim.attempt - 1,
                next_attempt_at=until,
                last_error=reason,
                lease_token=None,
                lease_until=None,
                enqueued_at=now if armed else None,
                updated_at=now,
            )
            if done != 1:
                return False
            session.add(
                AttemptRow(
                    delivery_id=claim.delivery_id,
                    number=claim.attempt - 1,
                    started_at=now,
                    duration_ms=0,
                    outcome="deferred",
                    message=reason,
                )
            )
            return True

    @staticmethod
    def _fenced(session: Session, claim: Claim, **values: Any) -> int:
        return _changed(
            session,
            update(DeliveryRow)
            .where(
                DeliveryRow.id == claim.delivery_id,
                DeliveryRow.lease_token == claim.token,
                DeliveryRow.state == State.SENDING,
            )
            .values(**values),
        )

    # -- the sweeper's side ---------------------------------------------

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
            _changed(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.state == State.SCHEDULED, DeliveryRow.publish_at <= now)
                .values(state=State.PENDING, next_attempt_at=now, enqueued_at=None, updated_at=now)
                .execution_options(synchronize_session=False),
            )
            due = _due(DeliveryRow, now)
            not_recent = _not_enqueued_since(DeliveryRow, stale)
            rows = session.execute(
                select(DeliveryRow.id, DeliveryRow.channel_type)
                .where(due, not_recent)
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

    def feed_changed_since_build(self, channel: str) -> bool:
        with self.session() as session:
            changed = session.scalar(
                select(func.max(DeliveryRow.updated_at)).where(DeliveryRow.channel == channel)
            )
            built = session.scalar(
                select(func.min(FeedDocumentRow.built_at)).where(FeedDocumentRow.channel == channel)
            )
            return changed is not None and (built is None or changed > built)

    # -- failure notifications ------------------------------------------
    # A notification has its own small ledger, with a delivery's states minus
    # scheduled and cancelled, and the same claim, fencing and sweeping.

    def claim_notification(
        self, notification_id: int, lease_seconds: float, now: datetime | None = None
    ) -> NotificationClaim | None:
        """Take a notification for one attempt, or None if it is not ours to take."""
        now = now or utcnow()
        token = secrets.token_hex(8)
        claimable = _claimable(NotificationRow, now)
        with self.session() as session, session.begin():
            taken = _take(
                session, NotificationRow, notification_id, claimable, token, lease_seconds, now
            )
            if not taken:
                return None
            row = session.get_one(NotificationRow, notification_id, populate_existing=True)
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
            done = _changed(
                session,
                update(NotificationRow)
                .where(
                    NotificationRow.id == claim.notification_id,
                    NotificationRow.lease_token == claim.token,
                    NotificationRow.state == State.SENDING,
                )
                .values(
                    state=state,
                    last_error=error,
                    last_status=http_status,
                    next_attempt_at=retry_at,
                    lease_token=None,
                    lease_until=None,
                    enqueued_at=now if retry_at else None,
                    delivered_at=now if state == State.DELIVERED else None,
                    updated_at=now,
                ),
            )
            return done == 1

    def collect_due_notifications(
        self, *, requeue_after: float, now: datetime | None = None
    ) -> list[int]:
        """Notifications the broker may have lost, as `collect_due` finds deliveries."""
        now = now or utcnow()
        stale = now - timedelta(seconds=requeue_after)
        due = _due(NotificationRow, now)
        not_recent = _not_enqueued_since(NotificationRow, stale)
        with self.session() as session, session.begin():
            ids = list(
                session.scalars(
                    select(NotificationRow.id)
                    .where(due, not_recent)
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

    # -- editors' actions -----------------------------------------------

    def retry(self, delivery_id: int, *, actor: str | None = None) -> Enqueue:
        """Put a failed, cancelled or waiting delivery back to pending, with fresh attempts."""
        now = utcnow()
        with self.session() as session, session.begin():
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            done = _changed(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state.in_(list(RETRIABLE)))
                .values(
                    state=State.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    enqueued_at=now,
                    updated_at=now,
                ),
            )
            if done != 1:
                raise InputError(
                    "delivery",
                    Phrase(
                        "{id} is {state}; only failed, cancelled or "
                        "retrying deliveries can be retried",
                        id=delivery_id,
                        state=Phrase(row.state),
                    ),
                )
            session.add(_editor_entry(row, "retry", actor, now))
            return Enqueue(row.id, row.channel_type)

    def retract(
        self,
        article_id: str,
        removable: Mapping[str, bool],
        *,
        actor: str | None = None,
    ) -> list[Enqueue]:
        """Retract an article in one transaction: what has not gone out is cancelled;
        what has (or is going out now) gets a removal delivery of its own, or, on a
        channel that cannot remove posts (`removable[channel]` False), a failed one
        saying so, so it is reported rather than hidden."""
        now = utcnow()
        with self.session() as session, session.begin():
            article = session.get(ArticleRow, article_id, with_for_update=True)
            if article is None:
                raise NotFound(Phrase("article {id!r} does not exist", id=article_id))
            article.retracted_at = article.retracted_at or now
            article.updated_at = now
            rows = list(
                session.scalars(select(DeliveryRow).where(DeliveryRow.article_id == article_id))
            )
            by_key = {(d.channel, d.kind): d for d in rows}
            queued: list[Enqueue] = []
            for d in rows:
                if d.kind != Kind.RETRACT and d.state in CANCELLABLE:
                    d.state, d.updated_at = State.CANCELLED, now
                    session.add(_editor_entry(d, "cancelled", actor, now))
            for d in rows:
                if d.kind != Kind.PUBLISH:
                    continue
                correction = by_key.get((d.channel, Kind.CORRECTION))
                went_out = [
                    x for x in (d, correction) if x and x.state in (State.DELIVERED, State.SENDING)
                ]
                if not went_out or (d.channel, Kind.RETRACT) in by_key:
                    continue
                removal = _removal(d, article, removable.get(d.channel, False), now)
                session.add(removal)
                session.flush()
                session.add(_editor_entry(removal, "retract", actor, now))
                if removal.state == State.PENDING:
                    queued.append(Enqueue(removal.id, removal.channel_type))
            return queued

    def siblings(self, article_id: str, channel: str) -> dict[str, DeliveryRow]:
        """The publish, correction and retract rows of one article on one channel."""
        with self.session() as session:
            rows = session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.article_id == article_id, DeliveryRow.channel == channel
                )
            )
            return {row.kind: row for row in rows}

    def failed_ids(self) -> list[int]:
        with self.session() as session:
            return list(
                session.scalars(select(DeliveryRow.id).where(DeliveryRow.state == State.FAILED))
            )

    def cancel(self, delivery_id: int, *, actor: str | None = None) -> None:
        now = utcnow()
        with self.session() as session, session.begin():
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            done = _changed(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.state.in_(list(CANCELLABLE)))
                .values(state=State.CANCELLED, updated_at=now),
            )
            if done != 1:
                raise InputError(
                    "delivery",
                    Phrase(
                        "{id} is {state} and cannot be cancelled",
                        id=delivery_id,
                        state=Phrase(row.state),
                    ),
                )
            session.add(_editor_entry(row, "cancelled", actor, now))

    # -- reading --------------------------------------------------------

    def article(self, article_id: str) -> tuple[ArticleRow, Article, list[DeliveryRow]]:
        with self.session() as session:
            row = session.get(ArticleRow, article_id)
            if row is None:
                raise NotFound(Phrase("article {id!r} does not exist", id=article_id))
            version = session.get_one(ArticleVersionRow, (article_id, row.current_version))
            deliveries = list(
                session.scalars(
                    select(DeliveryRow)
                    .where(DeliveryRow.article_id == article_id)
                    .order_by(DeliveryRow.id)
                )
            )
            return row, Article.from_json(version.data), deliveries

    def deliveries(
        self,
        *,
        article_ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        channel: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DeliveryRow]:
        query = select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit).offset(offset)
        if article_ids is not None:
            query = query.where(DeliveryRow.article_id.in_(list(article_ids)))
        if states:
            query = query.where(DeliveryRow.state.in_(list(states)))
        if channel:
            query = query.where(DeliveryRow.channel == channel)
        with self.session() as session:
            return list(session.scalars(query))

    def delivery(self, delivery_id: int) -> DeliveryRow:
        with self.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            return row

    def attempts(self, delivery_id: int) -> list[AttemptRow]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(AttemptRow)
                    .where(AttemptRow.delivery_id == delivery_id)
                    .order_by(AttemptRow.id)
                )
            )

    def recent_articles(self, limit: int = 50) -> list[ArticleRow]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(ArticleRow).order_by(ArticleRow.created_at.desc()).limit(limit)
                )
            )

    def counts_by_state(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(
                select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)
            ).all()
            return {state: count for state, count in rows}

    # -- feeds ----------------------------------------------------------

    def feed_payloads(self, channel: str, limit: int) -> list[tuple[dict[str, Any], datetime]]:
        """The newest delivered items of a feed channel, newest first, with the
        time their version was made (the item's `updated`)."""
        with self.session() as session:
            rows = session.execute(
                select(DeliveryRow.payload, ArticleVersionRow.created_at)
                .join(ArticleRow, ArticleRow.id == DeliveryRow.article_id)
                .join(
                    ArticleVersionRow,
                    and_(
                        ArticleVersionRow.article_id == DeliveryRow.article_id,
                        ArticleVersionRow.version == DeliveryRow.article_version,
                    ),
                )
                .where(
                    DeliveryRow.channel == channel,
                    DeliveryRow.state == State.DELIVERED,
                    ArticleRow.retracted_at.is_(None),
                )
                .order_by(DeliveryRow.published_at.desc(), DeliveryRow.article_id)
                .limit(limit)
            )
            return [(dict(payload), made) for payload, made in rows if payload]

    def save_feed_document(
        self,
        *,
        filename: str,
        channel: str,
        content_type: str,
        body: bytes,
        items: int,
        built_at: datetime,
    ) -> bool:
        """Keep a built document unless a newer build is already stored; True if kept.

        Two rebuilds may race (a debounced one and the sweeper's); the one that
        read the store later wins, whatever order they finish in.
        """
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self.session() as session, session.begin():
            row = session.get(FeedDocumentRow, filename, with_for_update=True)
            if row is None:
                row = FeedDocumentRow(filename=filename)
                session.add(row)
            elif row.built_at > built_at:
                return False
            row.channel, row.content_type, row.body = channel, content_type, body
            row.etag, row.items, row.built_at = etag, items, built_at
        return True

    def feed_document(self, filename: str) -> FeedDocumentRow | None:
        with self.session() as session:
            return session.get(FeedDocumentRow, filename)

    # -- media ----------------------------------------------------------

    def save_media_file(self, path: Path) -> str:
        """Copy a local file into the store; returns its reference `media/<sha>.<ext>`."""
        data = path.read_bytes()
        if len(data) > MAX_MEDIA_BYTES:
            raise InputError(
                "cover_image",
                Phrase(
                    "{name} is larger than {limit:,} bytes", name=path.name, limit=MAX_MEDIA_BYTES
                ),
            )
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if not content_type.startswith("image/"):
            raise InputError("cover_image", Phrase("{name} is not an image", name=path.name))
        media_id = hashlib.sha256(data).hexdigest() + (path.suffix.lower() or "")
        with self.session() as session, session.begin():
            if session.get(MediaRow, media_id) is None:
                session.add(
                    MediaRow(id=media_id, content_type=content_type, data=data, created_at=utcnow())
                )
        return f"media/{media_id}"

    def read_media(self, ref: str) -> tuple[bytes, str]:
        media_id = ref.removeprefix("media/")
        with self.session() as session:
            row = session.get(MediaRow, media_id)
            if row is None:
                raise NotFound(Phrase("{ref} is not in the store", ref=ref))
            return row.data, row.content_type


def _new_delivery(
    article_row: ArticleRow,
    plan: PlannedDelivery,
    article: Article,
    now: datetime,
    scheduled: bool,
) -> DeliveryRow:
    return DeliveryRow(
        article_id=article_row.id,
        article_version=article_row.current_version,
        channel=plan.channel,
        channel_type=plan.channel_type,
        kind=Kind.PUBLISH,
        state=State.SCHEDULED if scheduled else State.PENDING,
        attempts=0,
        max_attempts=plan.max_attempts,
        published_at=article_row.published_at,
        publish_at=article.publish_at,
        next_attempt_at=article.publish_at if scheduled else now,
        outcome_unknown=0,
        payload=plan.payload,
        checkpoint={},
        created_at=now,
        updated_at=now,
    )


def _apply_new_version(
    delivery: DeliveryRow,
    article_row: ArticleRow,
    plan: PlannedDelivery,
    article: Article,
    now: datetime,
    scheduled: bool,
) -> bool:
    """Point a delivery at the new version; False when it is in flight (the
    worker sees the new version when it records its outcome)."""
    delivery.article_version = article_row.current_version
    delivery.payload = plan.payload
    delivery.published_at = article_row.published_at
    delivery.publish_at = article.publish_at
    delivery.updated_at = now
    if delivery.state == State.SENDING:
        return False  # the worker sees the new version when it records its outcome
    delivery.state = State.SCHEDULED if scheduled else State.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = article.publish_at if scheduled else now
    delivery.last_error = None
    return True


def _correction(
    row: DeliveryRow | None,
    original: DeliveryRow,
    article_row: ArticleRow,
    plan: PlannedDelivery,
    now: datetime,
) -> DeliveryRow:
    """The correction of a delivered (or in-flight) post on a channel that cannot
    edit it: a follow-up post, the corrected article republished, or, where the
    platform can do neither, a failed row saying why, so it is reported."""
    row = row or _companion(original, Kind.CORRECTION, now)
    row.article_version = article_row.current_version
    row.published_at = article_row.published_at
    row.max_attempts = plan.max_attempts
    row.payload = plan.correction_payload
    row.checkpoint = {}  # a new version starts its steps afresh
    row.attempts = 0
    row.next_attempt_at = now
    row.updated_at = now
    row.enqueued_at = None
    if plan.correction == Correction.NONE or plan.correction_payload is None:
        row.state = State.FAILED
        row.last_error = _by_hand(original, "change", "correct")
    else:
        row.state = State.PENDING
        row.last_error = None
    return row


def _removal(
    original: DeliveryRow, article: ArticleRow, removable: bool, now: datetime
) -> DeliveryRow:
    row = _companion(original, Kind.RETRACT, now)
    row.article_version = original.article_version
    row.state = State.PENDING if removable else State.FAILED
    row.max_attempts = original.max_attempts
    row.published_at = article.published_at
    row.enqueued_at = now
    row.payload = {}
    if not removable:
        row.last_error = _by_hand(original, "remove", "remove")
    return row


def _companion(original: DeliveryRow, kind: Kind, now: datetime) -> DeliveryRow:
    """A correction or removal row beside the delivered post it acts on."""
    return DeliveryRow(
        article_id=original.article_id,
        channel=original.channel,
        channel_type=original.channel_type,
        kind=kind,
        attempts=0,
        outcome_unknown=0,
        checkpoint={},
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


def _by_hand(original: DeliveryRow, cannot: str, then: str) -> str:
    """Why a platform cannot do it, and where the editor can do it instead."""
    where = f" at {original.remote_url}" if original.remote_url else ""
    return f"{original.channel_type} cannot {cannot} a delivered post; {then} it by hand{where}"


def _reschedule(
    delivery: DeliveryRow,
    article_row: ArticleRow,
    article: Article,
    now: datetime,
    scheduled: bool,
) -> bool:
    """Move a delivery still waiting for its time to the article's new `publish_at`
    (no time, or one already past, releases it now); False if nothing changes."""
    if delivery.state != State.SCHEDULED or delivery.publish_at == article.publish_at:
        return False
    if article.published_at is None:  # it was dated by its schedule: follow it
        article_row.published_at = article.publish_at or now
    delivery.published_at = article_row.published_at
    delivery.publish_at = article.publish_at
    delivery.state = State.SCHEDULED if scheduled else State.PENDING
    delivery.next_attempt_at = article.publish_at if scheduled else now
    delivery.enqueued_at = None  # arm the new time; a countdown for the old one finds it moved
    delivery.updated_at = now
    return True


def _keep_schedule_in_version(version: ArticleVersionRow | None, article: Article) -> None:
    """The stored article shows the schedule it now has (not content: the hash stays)."""
    if version is not None:
        schedule = article.model_dump(mode="json", include={"publish_at", "timezone"})
        version.data = {**version.data, **schedule}


def _new_notification(
    delivery_id: int, plan: PlannedNotification, now: datetime
) -> NotificationRow:
    return NotificationRow(
        delivery_id=delivery_id,
        target=plan.target,
        event=plan.event,
        state=State.PENDING,
        attempts=0,
        max_attempts=plan.max_attempts,
        body=plan.body,
        next_attempt_at=now,
        enqueued_at=now,  # enqueued right after commit; the sweeper covers a loss
        created_at=now,
        updated_at=now,
    )


def _editor_entry(row: DeliveryRow, outcome: str, actor: str | None, now: datetime) -> AttemptRow:
    """Editors' actions go in the attempt log too, so it tells the whole story."""
    return AttemptRow(
        delivery_id=row.id,
        number=row.attempts,
        started_at=now,
        duration_ms=0,
        outcome=outcome,
        message=f"by {actor}" if actor else None,
        actor=actor,
    )


# Deliveries and notifications share one ledger discipline: the same states,
# leases, claims and sweeps. `model` is either table's class.


def _claimable(model: Any, now: datetime) -> Any:
    """A worker may take it: pending; retrying and due; sending whose lease expired
    (its worker died)."""
    return or_(
        model.state == State.PENDING,
        and_(model.state == State.RETRYING, model.next_attempt_at <= now),
        and_(model.state == State.SENDING, model.lease_until <= now),
    )


def _due(model: Any, now: datetime) -> Any:
    """What the sweeper looks at: claimable rows whose time has come."""
    return or_(
        and_(model.state.in_([State.PENDING, State.RETRYING]), model.next_attempt_at <= now),
        and_(model.state == State.SENDING, model.lease_until <= now),
    )


def _not_enqueued_since(model: Any, stale: datetime) -> Any:
    return or_(model.enqueued_at.is_(None), model.enqueued_at <= stale)


def _take(
    session: Session,
    model: Any,
    row_id: int,
    claimable: Any,
    token: str,
    lease_seconds: float,
    now: datetime,
    **extra: Any,
) -> bool:
    """The compare-and-set claim: sending under a fresh lease token, one more attempt."""
    return (
        _changed(
            session,
            update(model)
            .where(model.id == row_id, claimable)
            .values(
                state=State.SENDING,
                lease_token=token,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=model.attempts + 1,
                updated_at=now,
                **extra,
            ),
        )
        == 1
    )


def _changed(session: Session, statement: Any) -> int:
    """Rows an UPDATE matched: the compare-and-set's verdict."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return int(result.rowcount)
