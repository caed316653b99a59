"""The syndication run ledger: one row per (job, scheduled time), claimed by
inserting it, so a recurring run happens at most once whatever beats, workers
or restarts there are (`publisher.jobs.syndication` runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from publisher.config.jobs import SyndicationConfig
from publisher.domain.states import State
from publisher.store.base import StoreBase
from publisher.store.models import ArticleRow, ArticleVersionRow, DeliveryRow, SyndicationRunRow

#: Digest articles' ids start with this; a digest never lists another digest.
DIGEST_PREFIX = "digest-"


class RunState:
    RUNNING = "running"
    DONE = "done"
    EMPTY = "empty"  # nothing in the window: recorded, nothing sent
    FAILED = "failed"  # the channel refused the digest; not retried


@dataclass(frozen=True)
class ClaimedRun:
    run_id: int
    items: list[str]
    taken_over: bool  # its first worker died mid-run; these are the items it chose


class SyndicationSide(StoreBase):
    def claim_syndication_run(
        self, job: SyndicationConfig, slot: datetime, now: datetime, lease_seconds: float
    ) -> ClaimedRun | None:
        """Claim the run of `job` for `slot`, choosing its items; None if another
        caller holds it or it already ran. A run whose lease expired is taken
        over with the items chosen the first time."""
        lease = now + timedelta(seconds=lease_seconds)
        try:
            with self.session() as session, session.begin():
                row = session.scalar(
                    select(SyndicationRunRow).where(
                        SyndicationRunRow.job == job.name, SyndicationRunRow.scheduled_for == slot
                    )
                )
                if row is None:
                    items = _choose(session, job, slot)
                    row = SyndicationRunRow(
                        job=job.name, scheduled_for=slot, state=RunState.RUNNING, items=items,
                        lease_until=lease, started_at=now,
                    )  # fmt: skip
                    session.add(row)
                    session.flush()
                    return ClaimedRun(row.id, items, taken_over=False)
                if row.state != RunState.RUNNING or (row.lease_until and row.lease_until > now):
                    return None
                taken = session.execute(
                    update(SyndicationRunRow)
                    .where(
                        SyndicationRunRow.id == row.id,
                        SyndicationRunRow.lease_until == row.lease_until,
                    )
                    .values(lease_until=lease)
                )
                if taken.rowcount != 1:  # type: ignore[attr-defined]
                    return None
                return ClaimedRun(row.id, list(row.items), taken_over=True)
        except IntegrityError:
            return None  # another beat tick or worker claimed this run first

    def finish_syndication_run(
        self,
        run_id: int,
        state: str,
        *,
        article_id: str | None,
        error: str | None,
        now: datetime,
    ) -> None:
        with self.session() as session, session.begin():
            session.execute(
                update(SyndicationRunRow)
                .where(SyndicationRunRow.id == run_id)
                .values(
                    state=state,
                    article_id=article_id,
                    error=error,
                    finished_at=now,
                    lease_until=None,
                )
            )

    def syndication_runs(self, job: str | None = None) -> list[SyndicationRunRow]:
        query = select(SyndicationRunRow).order_by(SyndicationRunRow.scheduled_for)
        if job:
            query = query.where(SyndicationRunRow.job == job)
        with self.session() as session:
            return list(session.scalars(query))


def _choose(session: Session, job: SyndicationConfig, slot: datetime) -> list[str]:
    """The newest articles published within the job's window before `slot`, not
    retracted, not digests, with one of its tags if it has any; for `each`, not
    already on the job's channel."""
    rows = session.execute(
        select(ArticleRow.id, ArticleVersionRow.data)
        .join(
            ArticleVersionRow,
            and_(
                ArticleVersionRow.article_id == ArticleRow.id,
                ArticleVersionRow.version == ArticleRow.current_version,
            ),
        )
        .where(
            ArticleRow.published_at > slot - job.window,
            ArticleRow.published_at <= slot,
            ArticleRow.retracted_at.is_(None),
            ~ArticleRow.id.startswith(DIGEST_PREFIX, autoescape=True),
        )
        .order_by(ArticleRow.published_at.desc(), ArticleRow.id)
        .limit(1000)
    ).all()
    wanted = set(job.tags or ())
    ids = [r.id for r in rows if not wanted or wanted & set(r.data.get("tags") or ())]
    if job.mode == "each" and ids:
        already = set(
            session.scalars(
                select(DeliveryRow.article_id).where(
                    DeliveryRow.channel == job.channel,
                    DeliveryRow.article_id.in_(ids),
                    DeliveryRow.state != State.CANCELLED,
                )
            )
        )
        ids = [i for i in ids if i not in already]
    return ids[: job.max_items]
