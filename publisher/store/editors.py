"""Editors' actions: retry a delivery, cancel one, retract an article.

Each is a compare-and-set through `publisher.store.transitions.move`, so an
editor racing a worker for the same row either wins (the worker's claim then
finds nothing to take) or loses (the row went out, and the action says so),
never both.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.domain.errors import InputError, NotFound
from publisher.domain.i18n import Phrase
from publisher.domain.posts import remote_posts
from publisher.domain.states import CANCELLABLE, RETRIABLE, Approval, Kind, State
from publisher.store.base import StoreBase
from publisher.store.ledger import editor_entry
from publisher.store.models import ArticleRow, ArticleVersionRow, DeliveryRow
from publisher.store.publishing import removal
from publisher.store.records import Enqueue, utcnow
from publisher.store.transitions import move


def _check_let_through(session: Session, row: DeliveryRow) -> None:
    """A retry sends the version the row carries: never one a writer posted that an
    editor rejected (its rows were cancelled) or has not approved yet."""
    version = session.get(ArticleVersionRow, (row.article_id, row.article_version))
    if version is not None and version.approval in (Approval.REJECTED, Approval.AWAITING):
        raise InputError(
            "delivery",
            Phrase(
                "{id} carries version {version}, which is {approval}; it cannot be retried",
                id=row.id,
                version=row.article_version,
                approval=Phrase(str(version.approval)),
            ),
        )


class EditorSide(StoreBase):
    def retry(self, delivery_id: int, *, actor: str | None = None) -> Enqueue:
        """Put a failed, cancelled or waiting delivery back to pending, with fresh attempts."""
        now = utcnow()
        with self.session() as session, session.begin():
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            _check_let_through(session, row)
            moved = move(
                session, DeliveryRow, State.PENDING,
                where=[DeliveryRow.id == delivery_id], source=RETRIABLE,
                values=dict(attempts=0, next_attempt_at=now, enqueued_at=now, updated_at=now),
            )  # fmt: skip
            if not moved:
                raise InputError(
                    "delivery",
                    Phrase(
                        "{id} is {state}; only failed, cancelled or "
                        "retrying deliveries can be retried",
                        id=delivery_id,
                        state=Phrase(row.state),
                    ),
                )
            session.add(editor_entry(row, "retry", actor, now))
            return Enqueue(row.id, row.channel_type)

    def cancel(self, delivery_id: int, *, actor: str | None = None) -> None:
        now = utcnow()
        with self.session() as session, session.begin():
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            moved = move(
                session, DeliveryRow, State.CANCELLED,
                where=[DeliveryRow.id == delivery_id], source=CANCELLABLE,
                values=dict(updated_at=now),
            )  # fmt: skip
            if not moved:
                raise InputError(
                    "delivery",
                    Phrase(
                        "{id} is {state} and cannot be cancelled",
                        id=delivery_id,
                        state=Phrase(row.state),
                    ),
                )
            session.add(editor_entry(row, "cancelled", actor, now))

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
        saying so, so it is reported rather than hidden.

        The cancellation is one compare-and-set over the article's rows: a row a
        worker claimed a moment before is not cancelled (it is going out, so it
        gets a removal), and a row cancelled here can no longer be claimed.
        """
        now = utcnow()
        with self.session() as session, session.begin():
            article = session.get(ArticleRow, article_id, with_for_update=True)
            if article is None:
                raise NotFound(Phrase("article {id!r} does not exist", id=article_id))
            article.retracted_at = article.retracted_at or now
            article.updated_at = now
            cancelled = move(
                session, DeliveryRow, State.CANCELLED,
                where=[DeliveryRow.article_id == article_id, DeliveryRow.kind != Kind.RETRACT],
                source=CANCELLABLE, values=dict(updated_at=now),
                returning=[DeliveryRow.attempts],
            )  # fmt: skip
            rows = list(
                session.scalars(
                    select(DeliveryRow)
                    .where(DeliveryRow.article_id == article_id)
                    .execution_options(populate_existing=True)
                )
            )
            by_id = {d.id: d for d in rows}
            for moved in cancelled:
                session.add(editor_entry(by_id[moved.id], "cancelled", actor, now))
            by_key = {(d.channel, d.kind): d for d in rows}
            queued: list[Enqueue] = []
            for d in rows:
                if d.kind != Kind.PUBLISH:
                    continue
                correction = by_key.get((d.channel, Kind.CORRECTION))
                went_out = [
                    x
                    for x in (d, correction)
                    if x and (x.state in (State.DELIVERED, State.SENDING) or posted(x))
                ]
                if not went_out or (d.channel, Kind.RETRACT) in by_key:
                    continue
                row = removal(d, article, removable.get(d.channel, False), now)
                session.add(row)
                session.flush()
                session.add(editor_entry(row, "retract", actor, now))
                if row.state == State.PENDING:
                    queued.append(Enqueue(row.id, row.channel_type))
            return queued


def posted(row: DeliveryRow) -> bool:
    """Whether a delivery that did not finish left posts behind (a thread's first
    parts, listed in its checkpoint): they are removed like a delivered post."""
    return bool(remote_posts(row.checkpoint))
