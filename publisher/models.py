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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in, timezone-aware out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value

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


class DeliveryRow(Base):
    """One row per (article, channel); `article_version` says which version it carries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("article_id", "channel", name="uq_delivery_article_channel"),
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
    state: Mapped[str] = mapped_column(String(16))
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
