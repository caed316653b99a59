"""The delivery ledger's tables. The database, not the broker, owns the truth.

Schema changes go through Alembic (`publisher/migrations`); these classes
and the newest migration must agree (a test checks it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        # SQLite keeps the wall-clock digits and drops the offset, so 08:00+08:00
        # would read back as 08:00 UTC: store every time as UTC.
        try:
            return value.astimezone(UTC)
        except OverflowError:  # inputs are range-checked (article.in_range); say what it was
            raise ValueError("a time outside the range the store keeps") from None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ArticleRow(Base):
    __tablename__ = "articles"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    retracted_at: Mapped[datetime | None]
    actor: Mapped[str | None] = mapped_column(String(64))


class ArticleVersionRow(Base):
    __tablename__ = "article_versions"

    article_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(64))
    #: None: no approval asked (an editor's version, or `[newsroom] approval` off);
    #: else `Approval`: a writer's version awaiting an editor, approved or rejected.
    approval: Mapped[str | None] = mapped_column(String(16))


class DeliveryRow(Base):
    """One row per (article, channel, kind): the post itself, its correction and its
    removal are deliveries of their own; `article_version` says which version each carries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("article_id", "channel", "kind", name="uq_delivery_article_channel_kind"),
        ForeignKeyConstraint(
            ["article_id", "article_version"],
            ["article_versions.article_id", "article_versions.version"],
            name="fk_delivery_version",
        ),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_feed", "channel", "state", "published_at"),
        Index("ix_deliveries_changed", "channel", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(128), index=True)
    article_version: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(64))
    channel_type: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="publish", server_default="publish")
    state: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime]  # the article's, copied so feeds sort on one index
    publish_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    enqueued_at: Mapped[datetime | None]
    outcome_unknown: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_code: Mapped[str | None] = mapped_column(String(64))
    remote_id: Mapped[str | None] = mapped_column(String(256))
    remote_url: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    checkpoint: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class AttemptRow(Base):
    """The attempt log: what happened, when, how long it took, what the platform said."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    platform_code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(64))


class MediaRow(Base):
    """Local files an article refers to (its cover), kept in the store so any
    worker on any machine can read them."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # "<sha256>.<ext>"
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class FeedDocumentRow(Base):
    """The newest build of each feed document.

    Kept in the store (as well as written to disk) so an API on another
    machine serves the same bytes, and so the sweeper can tell a stale feed
    (a delivery changed after `built_at`) and rebuild it.
    """

    __tablename__ = "feed_documents"

    filename: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(80))
    items: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime]


class NotificationRow(Base):
    """A failure notification for one webhook target, with a ledger like a delivery's.

    Written in the transaction that records the delivery's failure, so a
    crash between the two cannot lose it; `body` is the exact JSON that is
    signed and sent, the same bytes on every attempt.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    target: Mapped[str] = mapped_column(String(64))  # the `[notifications.NAME]`
    event: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    enqueued_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class IngestFeedRow(Base):
    """Polling state of one `[ingest.NAME]` partner feed: its conditional-GET
    validators, when it was first polled (the first poll only takes a baseline
    unless asked to publish) and when it is next due."""

    __tablename__ = "ingest_feeds"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str | None] = mapped_column(Text)  # polled last; a new URL takes a new baseline
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    first_polled_at: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SeenItemRow(Base):
    """Every item ever read from a partner feed, by guid, with its normalized link.

    All items are remembered (not a high-water mark), so a feed that is not
    sorted by date, or that drops and re-adds items, never yields a duplicate
    or hides a new one; an item is known by its guid *or* its link.
    """

    __tablename__ = "seen_items"
    __table_args__ = (Index("ix_seen_items_link", "feed", "link_hash"),)

    feed: Mapped[str] = mapped_column(String(64), primary_key=True)
    guid: Mapped[str] = mapped_column(String(512), primary_key=True)
    link: Mapped[str] = mapped_column(Text)  # normalized
    link_hash: Mapped[str] = mapped_column(String(64))  # sha256 of `link`, indexed
    article_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))  # published, baseline, duplicate, rejected
    note: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime]


class SyndicationRunRow(Base):
    """One run of a `[syndication.NAME]` job for one scheduled time.

    The unique (job, scheduled_for) pair is the claim: a run happens at most
    once per scheduled time, whatever beats or workers restart. `items` is
    chosen when the run is claimed, so a run taken over after a crash sends
    the same selection.
    """

    __tablename__ = "syndication_runs"
    __table_args__ = (UniqueConstraint("job", "scheduled_for", name="uq_syndication_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    scheduled_for: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))  # running, done, empty, failed
    items: Mapped[list[str]] = mapped_column(JSON)
    article_id: Mapped[str | None] = mapped_column(String(128))  # the digest article
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


def carried_version() -> Any:
    """The join of a delivery and the article version it carries."""
    return and_(
        ArticleVersionRow.article_id == DeliveryRow.article_id,
        ArticleVersionRow.version == DeliveryRow.article_version,
    )
