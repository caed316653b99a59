"""Publishing and versions: an article, its versions and one delivery per channel.

Re-posting is where an editor races a worker: the delivery an editor's new
version re-points may be claimed in the same instant. So nothing here assigns
a delivery's state; every change is a compare-and-set from the state this
transaction read (`publisher.store.transitions`), and a move that lost (a
worker took the row meanwhile) is decided again from the row as it is now,
so a claimed delivery is never put back behind its worker's back.

A writer's version under `[newsroom] approval` (`awaiting=True`) waits for
an editor: what has not gone out moves to `awaiting_approval` carrying it,
while a post that is out (delivered, or sending now) is left as it is, on
the approved version, until the approval brings it up to date
(`publisher.store.approval`). So nothing unapproved ever reaches a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.domain.article import Article
from publisher.domain.errors import PublisherError
from publisher.domain.states import Approval, Correction, Kind, State
from publisher.store.base import StoreBase
from publisher.store.first_publish import (
    Version,
    new_article,
    new_delivery,
    queued,
    version_row,
    write_at_once,
    write_one_by_one,
)
from publisher.store.models import ArticleRow, ArticleVersionRow, DeliveryRow
from publisher.store.records import Enqueue, PlannedDelivery, PublishResult, utcnow
from publisher.store.transitions import born, keep, move

#: How often one channel's move may lose to a worker before publishing gives up.
#: Each loss means a worker moved the row on (claimed it, recorded its outcome),
#: so two or three is already rare.
RACE_ROUNDS = 5


class _Lost(Exception):
    """A compare-and-set lost to a concurrent writer: decide again."""


class PublishingSide(StoreBase):
    def publish(
        self,
        article: Article,
        plans: Sequence[PlannedDelivery],
        *,
        actor: str | None = None,
        awaiting: bool = False,
        now: datetime | None = None,
    ) -> PublishResult:
        """Store an article (or a new version of it) and its deliveries in one transaction.

        The same content again creates nothing. Changed content creates a new
        version; deliveries not yet delivered carry the new version, and
        delivered ones are re-sent where the channel updates in place.
        `awaiting`: a writer's version under approval, which waits for an editor.
        """
        now = now or utcnow()
        content_hash = article.content_hash()
        scheduled = article.publish_at is not None and article.publish_at > now
        # Most publishes are of new articles (`first_publish`, no ORM load); an
        # existing article is loaded, and locked, only when that wrote nothing.
        new = new_article(article, plans, actor, content_hash, scheduled, now, awaiting)
        statement, taken = new.one_statement(self.engine.dialect.name), False
        if statement is not None:  # atomic alone: no BEGIN and COMMIT round trips
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as alone:
                if write_at_once(alone, new, statement):
                    return new.result()
            taken = True
        with self.session() as session, session.begin():
            if not taken and write_one_by_one(session.connection(), new):
                return new.result()
            row = session.get(ArticleRow, article.id, with_for_update=True)
            assert row is not None  # articles are never deleted
            current = session.get(ArticleVersionRow, (article.id, row.current_version))
            changed = current is None or current.content_hash != content_hash
            if changed:
                row.current_version += 1
                row.updated_at = now
                row.retracted_at = None
                row.published_at = article.published_at or row.published_at
                session.add(
                    version_row(article, row.current_version, content_hash, now, actor, awaiting)
                )
            existing = {
                (d.channel, d.kind): d
                for d in session.scalars(
                    select(DeliveryRow).where(DeliveryRow.article_id == article.id)
                )
            }
            version = Version(row, article, current, changed, scheduled, now, awaiting)
            result = PublishResult(article.id, row.current_version, False, changed)
            outcomes = [_publish_on(session, version, plan, existing, result) for plan in plans]
            session.flush()  # the new rows, in one go: their ids are known after it
            for outcome in outcomes:
                enqueue = queued(outcome) if isinstance(outcome, DeliveryRow) else outcome
                if enqueue is not None:
                    result.to_enqueue.append(enqueue)
            return result


def _publish_on(
    session: Session,
    version: Version,
    plan: PlannedDelivery,
    existing: dict[tuple[str, str], DeliveryRow],
    result: PublishResult,
) -> Enqueue | DeliveryRow | None:
    """One channel's part of a publish; what to enqueue after commit, if anything,
    or the new row (enqueued once the caller's flush has given it an id)."""
    for _ in range(RACE_ROUNDS):
        delivery = existing.get((plan.channel, Kind.PUBLISH))
        if delivery is None:
            delivery = new_delivery(version, plan)
            session.add(delivery)
            existing[(plan.channel, Kind.PUBLISH)] = delivery
            return delivery
        try:
            if not version.changed:
                return _reschedule(session, delivery, version, result)
            if version.awaiting and delivery.state in (State.DELIVERED, State.SENDING):
                return None  # out already: brought up to date once an editor approves
            if delivery.state in (State.DELIVERED, State.SENDING) and (
                plan.correction != Correction.EDIT
            ):
                return _correction(session, existing, delivery, version, plan)
            return _apply_new_version(session, delivery, version, plan)
        except _Lost:
            for row in existing.values():
                session.refresh(row)  # read the rows as the winner left them
    raise PublisherError(
        f"article {version.row.id!r} on {plan.channel!r} kept changing under the publish; try again"
    )


def bring_up_to_date(
    session: Session,
    row: ArticleRow,
    approved: ArticleVersionRow,
    plan: PlannedDelivery,
    existing: dict[tuple[str, str], DeliveryRow],
    now: datetime,
) -> Enqueue | None:
    """An approved version on a channel whose post was out when the writer posted it:
    corrected (or re-sent in place) as an editor's version would have been."""
    article = Article.from_json(approved.data)
    version = Version(row, article, approved, changed=True, scheduled=False, now=now)
    result = PublishResult(row.id, approved.version, created=False, changed=True)
    outcome = _publish_on(session, version, plan, existing, result)
    if isinstance(outcome, DeliveryRow):
        session.flush()  # a new row: its id is known after it
        return queued(outcome)
    return outcome


def _apply_new_version(
    session: Session, delivery: DeliveryRow, version: Version, plan: PlannedDelivery
) -> Enqueue | None:
    """Point a delivery at the new version and send it again (or at its new time).

    One in flight keeps its state: the worker sees the new version when it
    records its outcome (`record_delivered` sends it again)."""
    now, article = version.now, version.article
    values: dict[str, Any] = dict(
        article_version=version.row.current_version,
        payload=plan.payload,
        published_at=version.row.published_at,
        publish_at=article.publish_at,
        updated_at=now,
    )
    where = [DeliveryRow.id == delivery.id]
    if delivery.state == State.SENDING:
        if not keep(session, DeliveryRow, State.SENDING, where=where, values=values):
            raise _Lost
        return None
    target = version.waiting
    moved = move(
        session, DeliveryRow, target, where=where, source=State(delivery.state),
        values=dict(
            values,
            attempts=0,
            next_attempt_at=article.publish_at if version.scheduled else now,
            enqueued_at=None if version.scheduled else now,
            last_error=None,
        ),
    )  # fmt: skip
    if not moved:
        raise _Lost
    return queued(delivery, target)


def _correction(
    session: Session,
    existing: dict[tuple[str, str], DeliveryRow],
    original: DeliveryRow,
    version: Version,
    plan: PlannedDelivery,
) -> Enqueue | None:
    """The correction of a delivered (or in-flight) post on a channel that cannot
    edit it: a follow-up post, the corrected article republished, or, where the
    platform can do neither, a failed row saying why, so it is reported."""
    now = version.now
    cannot = plan.correction == Correction.NONE or plan.correction_payload is None
    values: dict[str, Any] = dict(
        article_version=version.row.current_version,
        published_at=version.row.published_at,
        max_attempts=plan.max_attempts,
        payload=plan.correction_payload,
        updated_at=now,
        last_error=by_hand(original, "change", "correct") if cannot else None,
    )
    restart: dict[str, Any] = dict(
        checkpoint={},  # a new version starts its steps afresh
        attempts=0,
        next_attempt_at=now,
        enqueued_at=None if cannot else now,
    )
    target = State.FAILED if cannot else State.PENDING
    row = existing.get((original.channel, Kind.CORRECTION))
    if row is None:
        row = born(companion(original, Kind.CORRECTION, now), target)
        for key, value in {**values, **restart}.items():
            setattr(row, key, value)
        session.add(row)
        session.flush()
        existing[(original.channel, Kind.CORRECTION)] = row
        return queued(row, target)
    where = [DeliveryRow.id == row.id]
    if row.state == State.SENDING or cannot:
        # In flight: its worker sees the new version when it records the outcome.
        # Cannot be made: the report is renewed where it stands.
        if not keep(session, DeliveryRow, State(row.state), where=where, values=values):
            raise _Lost
        return None
    moved = move(
        session, DeliveryRow, target, where=where, source=State(row.state),
        values={**values, **restart},
    )  # fmt: skip
    if not moved:
        raise _Lost
    return queued(row, target)


def _reschedule(
    session: Session, delivery: DeliveryRow, version: Version, result: PublishResult
) -> Enqueue | None:
    """Move a delivery still waiting for its time to the article's new `publish_at`
    (no time, or one already past, releases it now). Too late once a worker has
    claimed it: then nothing changes. One awaiting approval takes the new time and
    keeps waiting; a writer's new time for an approved one waits for approval again."""
    article, now, row = version.article, version.now, version.row
    if delivery.publish_at == article.publish_at:
        return None
    if delivery.state == State.AWAITING_APPROVAL:
        times = dict(publish_at=article.publish_at, next_attempt_at=article.publish_at or now)
        if not keep(
            session, DeliveryRow, State.AWAITING_APPROVAL,
            where=[DeliveryRow.id == delivery.id], values=dict(times, updated_at=now),
        ):  # fmt: skip
            raise _Lost
        _keep_schedule_in_version(version.current, article)
        result.rescheduled = True
        return None
    if delivery.state != State.SCHEDULED:
        return None
    published_at = row.published_at
    if article.published_at is None:  # it was dated by its schedule: follow it
        published_at = article.publish_at or now
    target = version.waiting
    moved = move(
        session, DeliveryRow, target,
        where=[DeliveryRow.id == delivery.id], source=State.SCHEDULED,
        values=dict(
            published_at=published_at,
            publish_at=article.publish_at,
            next_attempt_at=article.publish_at if version.scheduled else now,
            # Arm the new time; a countdown for the old one finds it moved.
            enqueued_at=None if version.scheduled else now,
            updated_at=now,
        ),
    )  # fmt: skip
    if not moved:
        return None  # claimed (or cancelled) meanwhile: it goes out as it was
    row.published_at = published_at
    _keep_schedule_in_version(version.current, article)
    if version.awaiting and version.current is not None:
        version.current.approval = Approval.AWAITING
    result.rescheduled = True
    return queued(delivery, target)


def _keep_schedule_in_version(version: ArticleVersionRow | None, article: Article) -> None:
    """The stored article shows the schedule it now has (not content: the hash stays)."""
    if version is not None:
        schedule = article.model_dump(mode="json", include={"publish_at", "timezone"})
        version.data = {**version.data, **schedule}


def removal(
    original: DeliveryRow, article: ArticleRow, removable: bool, now: datetime
) -> DeliveryRow:
    """The removal of a delivered post: pending, or born failed where the platform
    cannot remove posts, saying where the editor can do it by hand."""
    row = born(companion(original, Kind.RETRACT, now), State.PENDING if removable else State.FAILED)
    row.article_version = original.article_version
    row.max_attempts = original.max_attempts
    row.published_at = article.published_at
    row.enqueued_at = now
    row.payload = {}
    if not removable:
        row.last_error = by_hand(original, "remove", "remove")
    return row


def companion(original: DeliveryRow, kind: Kind, now: datetime) -> DeliveryRow:
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


def by_hand(original: DeliveryRow, cannot: str, then: str) -> str:
    """Why a platform cannot do it, and where the editor can do it instead."""
    where = f" at {original.remote_url}" if original.remote_url else ""
    return f"{original.channel_type} cannot {cannot} a delivered post; {then} it by hand{where}"
