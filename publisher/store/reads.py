"""Read queries: articles, deliveries and their attempt logs, as the API, the
dashboard and the CLI show them. Each question has one query here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select

from publisher.domain.article import Article
from publisher.domain.errors import NotFound
from publisher.domain.i18n import Phrase
from publisher.domain.states import State
from publisher.store.base import StoreBase
from publisher.store.models import ArticleRow, ArticleVersionRow, AttemptRow, DeliveryRow


def delivery_filters(
    *,
    article_ids: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Any]:
    """The WHERE clauses of every delivery listing (`since`/`until`: last changed)."""
    where: list[Any] = []
    if article_ids is not None:
        where.append(DeliveryRow.article_id.in_(list(article_ids)))
    if states:
        where.append(DeliveryRow.state.in_([str(s) for s in states]))
    if channel:
        where.append(DeliveryRow.channel == channel)
    if since is not None:
        where.append(DeliveryRow.updated_at >= since)
    if until is not None:
        where.append(DeliveryRow.updated_at < until)
    return where


class ReadSide(StoreBase):
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
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DeliveryRow]:
        """Deliveries, newest first."""
        return self.delivery_page(
            article_ids=article_ids, states=states, channel=channel, since=since, until=until,
            limit=limit, offset=offset, count=False,
        )[0]  # fmt: skip

    def delivery_page(
        self,
        *,
        article_ids: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
        channel: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        count: bool = True,
    ) -> tuple[list[DeliveryRow], int]:
        """A page of deliveries, newest first, and how many match in all
        (-1 when `count` is False and nobody asked)."""
        where = delivery_filters(
            article_ids=article_ids, states=states, channel=channel, since=since, until=until
        )
        with self.session() as session:
            total = -1
            if count:
                total = session.scalar(
                    select(func.count()).select_from(DeliveryRow).where(*where)
                ) or 0  # fmt: skip
            rows = session.scalars(
                select(DeliveryRow)
                .where(*where)
                .order_by(DeliveryRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(rows), int(total)

    def article_page(
        self,
        *,
        states: Iterable[str] | None = None,
        channel: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[tuple[ArticleRow, str | None, str | None]], int]:
        """A page of articles, newest first, with the current version's title and
        URL, and how many match in all. `states`/`channel`: only articles with a
        delivery in one of those states / on that channel; `since`/`until`: first
        posted."""
        where: list[Any] = []
        if since is not None:
            where.append(ArticleRow.created_at >= since)
        if until is not None:
            where.append(ArticleRow.created_at < until)
        if states or channel:
            matching = delivery_filters(states=states, channel=channel)
            where.append(exists().where(DeliveryRow.article_id == ArticleRow.id, *matching))
        title = ArticleVersionRow.data["title"].as_string()
        url = ArticleVersionRow.data["url"].as_string()
        with self.session() as session:
            total = session.scalar(select(func.count()).select_from(ArticleRow).where(*where))
            rows = session.execute(
                select(ArticleRow, title, url)
                .join(
                    ArticleVersionRow,
                    and_(
                        ArticleVersionRow.article_id == ArticleRow.id,
                        ArticleVersionRow.version == ArticleRow.current_version,
                    ),
                )
                .where(*where)
                .order_by(ArticleRow.created_at.desc(), ArticleRow.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [(row, t, u) for row, t, u in rows], int(total or 0)

    def delivery(self, delivery_id: int) -> DeliveryRow:
        with self.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            if row is None:
                raise NotFound(Phrase("delivery {id} does not exist", id=delivery_id))
            return row

    def siblings(self, article_id: str, channel: str) -> dict[str, DeliveryRow]:
        """The publish, correction and retract rows of one article on one channel."""
        with self.session() as session:
            rows = session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.article_id == article_id, DeliveryRow.channel == channel
                )
            )
            return {row.kind: row for row in rows}

    def delivery_ids(self, state: State, *, channel: str | None = None) -> list[int]:
        """Ids of the deliveries in `state` (on `channel`), oldest first: what a bulk
        retry walks through."""
        query = select(DeliveryRow.id).where(DeliveryRow.state == str(state))
        if channel:
            query = query.where(DeliveryRow.channel == channel)
        with self.session() as session:
            return list(session.scalars(query.order_by(DeliveryRow.id)))

    def failed_ids(self) -> list[int]:
        return self.delivery_ids(State.FAILED)

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
