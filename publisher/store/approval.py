"""Editors' approval of a writer's version under `[newsroom] approval`.

A writer's version waits (`publisher.store.publishing`, `awaiting=True`):
its deliveries that had not gone out sit in `awaiting_approval`, posts that
were out stay on the version an editor last let through. Approving moves the
waiting rows on (to their time, `scheduled`, if it is still ahead, else
`pending`) and brings the posts that were out up to date exactly as an
editor's own new version would; rejecting cancels the waiting rows with the
reason. Both are logged on every delivery they move, with who and when.
Only the version that is awaiting can be approved (`version`, when the
caller gives it, guards against approving one the editor has not seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from publisher.domain.errors import InputError, NotFound
from publisher.domain.i18n import Phrase
from publisher.domain.states import Approval, Correction, Kind, State
from publisher.store.base import StoreBase
from publisher.store.ledger import editor_entry
from publisher.store.models import ArticleRow, ArticleVersionRow, AttemptRow, DeliveryRow
from publisher.store.publishing import bring_up_to_date
from publisher.store.records import Enqueue, PlannedDelivery, utcnow
from publisher.store.transitions import move

#: Rejection reasons are kept in the attempt log; a paragraph at most.
REASON_CHARS = 500


class ApprovalSide(StoreBase):
    def approve(
        self,
        article_id: str,
        plans: Sequence[PlannedDelivery],
        *,
        actor: str | None,
        version: int | None = None,
        now: datetime | None = None,
    ) -> list[Enqueue]:
        """Let the awaiting version out; returns what to enqueue after commit.

        `plans` are the approved version's, formatted by the caller, for the
        channels whose post was out when the writer posted it."""
        now = now or utcnow()
        with self.session() as session, session.begin():
            row, current = _awaiting(session, article_id, version)
            if actor is not None and actor == current.actor:
                raise InputError(
                    "article",
                    Phrase(
                        "{name} submitted version {version}; another editor must approve it",
                        name=actor,
                        version=current.version,
                    ),
                )
            current.approval = Approval.APPROVED
            queued: list[Enqueue] = []
            rows = _rows(session, article_id)
            for d in rows:
                if d.state != State.AWAITING_APPROVAL:
                    continue
                ahead = d.publish_at is not None and d.publish_at > now
                target = State.SCHEDULED if ahead else State.PENDING
                moved = move(
                    session, DeliveryRow, target,
                    where=[DeliveryRow.id == d.id], source=State.AWAITING_APPROVAL,
                    values=dict(
                        attempts=0,
                        next_attempt_at=d.publish_at if ahead else now,
                        enqueued_at=None if ahead else now,  # a schedule is armed by the caller
                        last_error=None,
                        updated_at=now,
                    ),
                )  # fmt: skip
                if moved:
                    session.add(editor_entry(d, "approved", actor, now))
                    if target == State.PENDING:
                        queued.append(Enqueue(d.id, d.channel_type))
            queued += _bring_out_posts_up_to_date(session, row, current, rows, plans, actor, now)
            return queued

    def reject(
        self,
        article_id: str,
        reason: str,
        *,
        actor: str | None,
        version: int | None = None,
        now: datetime | None = None,
    ) -> int:
        """Cancel what waits for the awaiting version, saying why; returns how many.

        Posts that were out stay as they are, on the version last let through."""
        now = now or utcnow()
        reason = " ".join(reason.split())
        if not reason:
            raise InputError("reason", Phrase("is required: say why it is rejected"))
        if len(reason) > REASON_CHARS:
            raise InputError(
                "reason", Phrase("is longer than {limit} characters", limit=REASON_CHARS)
            )
        with self.session() as session, session.begin():
            _, current = _awaiting(session, article_id, version)
            current.approval = Approval.REJECTED
            why = f"rejected by {actor}: {reason}" if actor else f"rejected: {reason}"
            cancelled = move(
                session, DeliveryRow, State.CANCELLED,
                where=[DeliveryRow.article_id == article_id],
                source=State.AWAITING_APPROVAL,
                values=dict(last_error=why, last_code=None, updated_at=now),
                returning=[DeliveryRow.attempts],
            )  # fmt: skip
            for moved in cancelled:
                session.add(
                    AttemptRow(
                        delivery_id=moved.id,
                        number=moved.attempts,
                        started_at=now,
                        duration_ms=0,
                        outcome="rejected",
                        message=why,
                        actor=actor,
                    )
                )
            return len(cancelled)

    def approval(self, article_id: str) -> tuple[int, str | None, str | None]:
        """The current version, its approval (None: none asked) and who posted it."""
        with self.session() as session:
            row = session.get(ArticleRow, article_id)
            if row is None:
                raise NotFound(Phrase("article {id!r} does not exist", id=article_id))
            current = session.get_one(ArticleVersionRow, (article_id, row.current_version))
            return current.version, current.approval, current.actor


def _awaiting(
    session: Session, article_id: str, version: int | None
) -> tuple[ArticleRow, ArticleVersionRow]:
    """The article (locked) and its current version, which must be awaiting approval."""
    row = session.get(ArticleRow, article_id, with_for_update=True)
    if row is None:
        raise NotFound(Phrase("article {id!r} does not exist", id=article_id))
    current = session.get_one(ArticleVersionRow, (article_id, row.current_version))
    if current.approval != Approval.AWAITING:
        raise InputError("article", Phrase("{id} has no version awaiting approval", id=article_id))
    if version is not None and version != current.version:
        raise InputError(
            "version",
            Phrase(
                "version {asked} is not the one awaiting approval ({current})",
                asked=version,
                current=current.version,
            ),
        )
    return row, current


def _rows(session: Session, article_id: str) -> list[DeliveryRow]:
    return list(
        session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.article_id == article_id)
            .order_by(DeliveryRow.id)
            .execution_options(populate_existing=True)
        )
    )


def _bring_out_posts_up_to_date(
    session: Session,
    row: ArticleRow,
    current: ArticleVersionRow,
    rows: list[DeliveryRow],
    plans: Sequence[PlannedDelivery],
    actor: str | None,
    now: datetime,
) -> list[Enqueue]:
    """Posts that were out (delivered or sending) when the writer posted get the
    approved version the way an editor's version reaches them: an edit in place,
    a follow-up or a republished post, each on the channel's own terms."""
    existing = {(d.channel, d.kind): d for d in rows}
    behind = {
        d.channel
        for d in rows
        if d.kind == Kind.PUBLISH
        and d.state in (State.DELIVERED, State.SENDING)
        and d.article_version < current.version
    }
    queued: list[Enqueue] = []
    for plan in plans:
        if plan.channel not in behind:
            continue
        item = bring_up_to_date(session, row, current, plan, existing, now)
        # The approval is logged where the approved version went: the post itself
        # (edited in place) or its correction beside it.
        kind = Kind.PUBLISH if plan.correction == Correction.EDIT else Kind.CORRECTION
        session.add(editor_entry(existing[(plan.channel, kind)], "approved", actor, now))
        if item is not None:
            queued.append(item)
    return queued
