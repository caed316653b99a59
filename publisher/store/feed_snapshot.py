"""What one feed build sees: the newest items of a channel and every delivery
waiting on it, read in one short transaction before anything is rendered
(`read_feed`). `publisher.store.feed_builds` then saves the documents built
from it and settles exactly the waiting rows it saw.

A snapshot is read on every rebuild, so its statements are built once, at
import, with the channel and the time as bound parameters.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, String, and_, bindparam, select

from publisher.domain.states import Kind, State
from publisher.store.core import Store
from publisher.store.ledger import claimable_delivery
from publisher.store.models import (
    ArticleRow,
    ArticleVersionRow,
    DeliveryRow,
    UTCDateTime,
    carried_version,
)
from publisher.store.records import utcnow

#: Every state a row the build may take can be in (`waiting_rows` says which of them, when).
WAITING_STATES = (State.PENDING, State.RETRYING, State.SENDING, State.SCHEDULED)


@dataclass(frozen=True)
class SnapshotItem:
    """One item the document may hold: a delivered row, or one waiting for this build."""

    delivery_id: int
    version: int
    payload: dict[str, Any]
    updated: datetime  # when its article version was made
    waiting: bool
    #: The media files the live document held for this item when it was last built.
    files: tuple[str, ...] = ()
    attempts: int = 0  # so far: a build that cannot render it yet spends the next one
    max_attempts: int = 1


@dataclass(frozen=True)
class FeedSnapshot:
    """What one build of one channel sees, read before rendering."""

    channel: str
    build_id: str
    read_at: datetime
    #: The newest `limit` items (delivered or waiting), newest first.
    items: list[SnapshotItem]
    #: Waiting publish rows a burst pushed out of the window before it was built.
    crowded_out: list[tuple[int, int]] = field(default_factory=list)
    #: Waiting removals (retract rows): done once a document without the item is live.
    removals: list[tuple[int, int]] = field(default_factory=list)
    #: The delivered items those removals take out of the document (their publish rows).
    dropped: list[SnapshotItem] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return sum(i.waiting for i in self.items) + len(self.crowded_out) + len(self.removals)


def waiting_rows(now: datetime | ColumnElement[datetime]) -> Any:
    """What a worker could claim now: the build takes exactly those rows, never a live lease.

    The plain `state IN (...)` in front lets the (channel, state, ...) index find
    the few waiting rows; the OR alone makes the database scan the channel's history.
    """
    return and_(DeliveryRow.state.in_(WAITING_STATES), claimable_delivery(now))


_ITEM_COLUMNS = (
    DeliveryRow.id,
    DeliveryRow.article_version,
    DeliveryRow.payload,
    ArticleVersionRow.created_at,
    DeliveryRow.published_at,
    DeliveryRow.article_id,
    DeliveryRow.checkpoint,
    DeliveryRow.attempts,
    DeliveryRow.max_attempts,
)
_CHANNEL: BindParameter[str] = bindparam("channel", type_=String())
#: The snapshot's time, in the statements built once (here and in `feed_builds`).
SNAPSHOT_TIME: BindParameter[datetime] = bindparam("now", type_=UTCDateTime())
_LIVE_ITEMS = (
    select(*_ITEM_COLUMNS)
    .join(ArticleRow, ArticleRow.id == DeliveryRow.article_id)
    .join(ArticleVersionRow, carried_version())
    .where(
        DeliveryRow.channel == _CHANNEL,
        DeliveryRow.kind == Kind.PUBLISH,
        ArticleRow.retracted_at.is_(None),
    )
)
# Built once: building them costs SQLAlchemy more CPU than the database takes
# to run them (see `transitions.PreparedMove`).
_DELIVERED_WINDOW = (
    _LIVE_ITEMS.where(DeliveryRow.state == State.DELIVERED)
    .order_by(DeliveryRow.published_at.desc(), DeliveryRow.article_id)
    .limit(bindparam("limit"))
)
_WAITING_ITEMS = _LIVE_ITEMS.where(waiting_rows(SNAPSHOT_TIME))
_WAITING_REMOVALS = select(
    DeliveryRow.id, DeliveryRow.article_version, DeliveryRow.article_id
).where(
    DeliveryRow.channel == _CHANNEL, DeliveryRow.kind == Kind.RETRACT, waiting_rows(SNAPSHOT_TIME)
)
_DROPPED_ITEMS = (
    select(*_ITEM_COLUMNS)
    .join(ArticleVersionRow, carried_version())
    .where(
        DeliveryRow.channel == _CHANNEL,
        DeliveryRow.kind == Kind.PUBLISH,
        DeliveryRow.article_id.in_(bindparam("articles", expanding=True)),
    )
)


def read_feed(store: Store, channel: str, limit: int, now: datetime | None = None) -> FeedSnapshot:
    """The newest `limit` items of a channel plus every delivery waiting on it.

    Two narrow reads instead of one wide one: the delivered window walks the
    (channel, state, published_at) index and stops after `limit` rows, so the
    cost does not grow with the history; the waiting rows are few (a burst).
    """
    now = now or utcnow()
    params = dict(channel=channel, now=now)
    with store.session() as session:
        connection = session.connection()  # plain rows: nothing here needs the ORM
        delivered = connection.execute(_DELIVERED_WINDOW, dict(params, limit=limit)).all()
        waiting = connection.execute(_WAITING_ITEMS, params).all()
        removals = connection.execute(_WAITING_REMOVALS, params).all()
        articles = sorted({r.article_id for r in removals})
        dropped = (
            connection.execute(_DROPPED_ITEMS, dict(params, articles=articles)).all()
            if removals
            else []
        )
    rows = [(r, False) for r in delivered] + [(r, True) for r in waiting]
    rows.sort(key=lambda pair: (-pair[0].published_at.timestamp(), pair[0].article_id))
    items = [_item(r, is_waiting) for r, is_waiting in rows[:limit]]
    return FeedSnapshot(
        channel=channel,
        build_id="build-" + secrets.token_hex(6),
        read_at=now,
        items=items,
        crowded_out=[(r.id, r.article_version) for r, w in rows[limit:] if w],
        removals=[(r.id, r.article_version) for r in removals],
        dropped=[_item(r, False) for r in dropped],
    )


def _item(row: Any, waiting: bool) -> SnapshotItem:
    files = (row.checkpoint or {}).get("files") or ()
    payload = dict(row.payload or {})
    return SnapshotItem(
        row.id, row.article_version, payload, row.created_at, waiting, tuple(files),
        row.attempts or 0, row.max_attempts or 1,
    )  # fmt: skip
