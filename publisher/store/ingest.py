"""Partner-feed polling state and the seen-items memory that keeps ingestion
from publishing an item twice (`publisher.jobs.ingest` does the polling)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from publisher.store.base import StoreBase
from publisher.store.models import IngestFeedRow, SeenItemRow


class IngestSide(StoreBase):
    def claim_ingest_poll(self, name: str, every: float, now: datetime) -> bool:
        """Move a due feed to its next slot; True for the one caller that did."""
        self.ingest_feed(name, now)
        with self.session() as session, session.begin():
            moved = session.execute(
                update(IngestFeedRow)
                .where(
                    IngestFeedRow.name == name,
                    or_(IngestFeedRow.next_poll_at.is_(None), IngestFeedRow.next_poll_at <= now),
                )
                .values(next_poll_at=now + timedelta(seconds=every), updated_at=now)
            )
            return moved.rowcount == 1  # type: ignore[attr-defined]

    def ingest_feed(self, name: str, now: datetime) -> IngestFeedRow:
        """A feed's polling state, created on first use (by whichever caller wins)."""
        with self.session() as session:
            row = session.get(IngestFeedRow, name)
        if row is None:
            try:
                with self.session() as session, session.begin():
                    session.add(IngestFeedRow(name=name, updated_at=now))
            except IntegrityError:
                pass  # created by a concurrent caller
            with self.session() as session:
                row = session.get_one(IngestFeedRow, name)
        return row

    def record_poll(self, name: str, **values: Any) -> None:
        """What one poll found (status, error, validators, times)."""
        with self.session() as session, session.begin():
            session.execute(
                update(IngestFeedRow).where(IngestFeedRow.name == name).values(**values)
            )

    def known_items(
        self, feed: str, guids: Sequence[str], link_hashes: Sequence[str]
    ) -> tuple[set[str], dict[str, str | None]]:
        """Which of these guids were seen, and which link hashes, with their article."""
        with self.session() as session:
            known_guids = set(
                session.scalars(
                    select(SeenItemRow.guid).where(
                        SeenItemRow.feed == feed, SeenItemRow.guid.in_(list(guids))
                    )
                )
            )
            rows = session.execute(
                select(SeenItemRow.link_hash, SeenItemRow.article_id).where(
                    SeenItemRow.feed == feed, SeenItemRow.link_hash.in_(list(link_hashes))
                )
            )
            return known_guids, {key: article for key, article in rows}

    def remember_item(
        self,
        feed: str,
        *,
        guid: str,
        link: str,
        link_hash: str,
        outcome: str,
        article_id: str | None,
        note: str | None = None,
    ) -> None:
        """Remember an item for good; a concurrent poll that remembered it first wins."""
        row = SeenItemRow(
            feed=feed, guid=guid, link=link, link_hash=link_hash, article_id=article_id,
            outcome=outcome, note=note, first_seen_at=datetime.now(UTC),
        )  # fmt: skip
        try:
            with self.session() as session, session.begin():
                session.add(row)
        except IntegrityError:
            pass

    def seen_items(self, feed: str) -> list[SeenItemRow]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(SeenItemRow)
                    .where(SeenItemRow.feed == feed)
                    .order_by(SeenItemRow.first_seen_at, SeenItemRow.guid)
                )
            )

    def ingest_feed_state(self, feed: str) -> IngestFeedRow | None:
        with self.session() as session:
            return session.get(IngestFeedRow, feed)
