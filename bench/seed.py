"""The articles bench/throughput.py publishes, and the bulk-inserted stores its
rebuild timings read (rows in the shape `Store.publish` writes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from channels.feed import FeedChannel
from publisher.domain.article import Article, parse_article
from publisher.domain.states import State
from publisher.store import Store
from publisher.store.models import ArticleRow, ArticleVersionRow, DeliveryRow

PARAGRAPH = (
    "<p>Paragraph {i} of story {n}: the city council met on Tuesday to discuss "
    "<a href='https://news.example.org/budget'>the budget</a> and <em>several</em> "
    "other matters of public interest.</p>"
)


def make_article(article_id: str, n: int, published_at: datetime | None = None) -> Article:
    """A realistic article (~1.1 kB of HTML, tags, author) through the real parser."""
    fields: dict[str, Any] = {
        "id": article_id,
        "url": f"https://news.example.org/stories/{article_id}",
        "title": f"Council story number {n}",
        "body_html": "".join(PARAGRAPH.format(i=i, n=n) for i in range(6)),
        "author": "City desk",
        "tags": ["city", "budget"],
    }
    if published_at is not None:
        fields["published_at"] = published_at.isoformat()
    return parse_article(fields)


# -- the deployment under test ----------------------------------------------


BASE_TIME = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def populate(store: Store, channels: list[FeedChannel], first: int, count: int) -> None:
    """Articles `first .. first+count-1`, each delivered to every feed channel, inserted
    in batches with the rows `Store.publish` and `Store.record_delivered` write.

    Article n is published n minutes before BASE_TIME, so the newest 50 are
    the same items however many older ones the store holds.
    """
    template = make_article("template", 0, BASE_TIME)
    batch = 2000
    for start in range(first, first + count, batch):
        articles, versions, deliveries = [], [], []
        for n in range(start, min(start + batch, first + count)):
            published = BASE_TIME - timedelta(minutes=n)
            made = published + timedelta(seconds=30)
            article = template.model_copy(
                update={
                    "id": f"story-{n:07d}",
                    "url": f"https://news.example.org/stories/story-{n:07d}",
                    "title": f"Council story number {n}",
                    "body_html": "".join(PARAGRAPH.format(i=i, n=n) for i in range(6)),
                    "published_at": published,
                }
            )
            articles.append(
                dict(id=article.id, current_version=1, published_at=published,
                     created_at=made, updated_at=made, retracted_at=None, actor="bench")
            )  # fmt: skip
            versions.append(
                dict(article_id=article.id, version=1, content_hash=article.content_hash(),
                     data=article.to_json(), created_at=made, actor="bench")
            )  # fmt: skip
            for channel in channels:
                payload = channel.format(article)
                deliveries.append(
                    dict(article_id=article.id, article_version=1, channel=channel.name,
                         channel_type=channel.type_name, state=State.DELIVERED.value, attempts=1,
                         max_attempts=channel.config.max_attempts, published_at=published,
                         publish_at=None, next_attempt_at=made, lease_until=None,
                         lease_token=None, enqueued_at=None, outcome_unknown=0,
                         last_error=None, last_code=None, remote_id=payload["guid"],
                         remote_url=channel.feed_url(channel.filenames()[0]), payload=payload,
                         checkpoint={}, created_at=made, updated_at=made, delivered_at=made)
                )  # fmt: skip
        with store.session() as session, session.begin():
            session.execute(insert(ArticleRow), articles)
            session.execute(insert(ArticleVersionRow), versions)
            session.execute(insert(DeliveryRow), deliveries)


def store_bytes(store: Store) -> int:
    """Tables and indexes of the store (SQLite: the file's pages; PostgreSQL: our schema)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        size = conn.exec_driver_sql(
            "SELECT sum(pg_total_relation_size(quote_ident(schemaname) || '.' ||"
            " quote_ident(tablename))) FROM pg_tables WHERE schemaname = current_schema()"
        ).scalar_one()
        return int(size or 0)
