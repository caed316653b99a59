"""A new article's first publish: its row, its first version and one delivery per
channel, without the unit of work, in as few round trips as the database allows.

Most publishes are of new articles, so this is the store's hot write. The
article's own INSERT asks whether the id is taken (`ON CONFLICT DO NOTHING`,
and then nothing is written and the caller publishes a new version); there is
nothing to read back but the deliveries' ids.

- PostgreSQL: one statement, and one round trip. The version and the
  deliveries are inserted by data-modifying CTEs that select from the
  article's INSERT, so a taken id writes nothing; the deliveries travel as one
  JSON parameter read back as rows (`json_to_recordset`), so the statement has
  one shape whatever the number of channels and psycopg prepares it once. A
  statement is atomic on its own, so it runs without BEGIN and COMMIT (two
  more round trips). Each round trip costs the publishing process and the
  server CPU that a burst of publishes competes for with the workers.
- SQLite (in-process, no round trips): three INSERT statements.

Both write the rows `new_delivery` builds, so the two cannot disagree on
what a new delivery is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, TextClause, bindparam, insert, inspect, text
from sqlalchemy.dialects import postgresql, sqlite

from publisher.domain.article import Article
from publisher.domain.states import Approval, Kind, State
from publisher.store.models import ArticleRow, ArticleVersionRow, Base, DeliveryRow
from publisher.store.records import Enqueue, PlannedDelivery, PublishResult
from publisher.store.transitions import born

ARTICLES = cast(Table, ArticleRow.__table__)
VERSIONS = cast(Table, ArticleVersionRow.__table__)
DELIVERIES = cast(Table, DeliveryRow.__table__)

#: A new article's row, or nothing if its id is taken (and then no error: the
#: caller publishes a new version), by dialect.
_INSERT_NEW_ARTICLE = {
    name: dialect_insert(ARTICLES)
    .on_conflict_do_nothing(index_elements=[ARTICLES.c.id])
    .returning(ARTICLES.c.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_INSERT_VERSION = insert(VERSIONS)
_INSERT_DELIVERIES = insert(DELIVERIES).returning(DELIVERIES.c.id, sort_by_parameter_order=True)


@dataclass
class Version:
    """What one publish() call writes into each delivery of the article."""

    row: ArticleRow
    article: Article
    current: ArticleVersionRow | None
    changed: bool
    scheduled: bool
    now: datetime
    #: A writer's version under approval: it waits for an editor.
    awaiting: bool = False

    @property
    def waiting(self) -> State:
        if self.awaiting:
            return State.AWAITING_APPROVAL
        return State.SCHEDULED if self.scheduled else State.PENDING


@dataclass
class NewArticle:
    """A new article's rows, built once and written by one of the two ways below."""

    row: ArticleRow
    first: ArticleVersionRow
    deliveries: list[DeliveryRow]

    def one_statement(self, dialect: str) -> TextClause | None:
        """The statement that writes it all at once, where the database has one:
        PostgreSQL, with deliveries that all set the same columns."""
        if dialect != "postgresql" or not self.deliveries:
            return None
        shapes = {tuple(values) for values in self.delivery_values}
        if len(shapes) != 1:
            return None
        return _one_statement(tuple(columns(self.row)), tuple(columns(self.first)), *shapes)

    @functools.cached_property
    def delivery_values(self) -> list[dict[str, Any]]:
        return [columns(d) for d in self.deliveries]

    def result(self) -> PublishResult:
        result = PublishResult(self.row.id, 1, True, True)
        for delivery in self.deliveries:
            enqueue = queued(delivery)
            if enqueue is not None:
                result.to_enqueue.append(enqueue)
        return result


def new_article(
    article: Article,
    plans: Sequence[PlannedDelivery],
    actor: str | None,
    content_hash: str,
    scheduled: bool,
    now: datetime,
    awaiting: bool = False,
) -> NewArticle:
    """The rows a new article's first publish writes."""
    row = ArticleRow(
        id=article.id,
        current_version=1,
        published_at=article.published_at or article.publish_at or now,
        created_at=now,
        updated_at=now,
        retracted_at=None,
        actor=actor,
    )
    first = version_row(article, 1, content_hash, now, actor, awaiting)
    version = Version(row, article, None, True, scheduled, now, awaiting)
    return NewArticle(row, first, [new_delivery(version, plan) for plan in plans])


def write_at_once(connection: Connection, new: NewArticle, statement: TextClause) -> bool:
    """Write `new` with its `one_statement`; False, with nothing written, when the
    id is taken. The statement is atomic on its own: the caller need not open a
    transaction for it (on an autocommit connection it is one round trip, where
    BEGIN and COMMIT would be two more)."""
    params: dict[str, Any] = {f"a_{k}": v for k, v in columns(new.row).items()}
    params.update({f"v_{k}": v for k, v in columns(new.first).items()})
    params["deliveries"] = json.dumps(new.delivery_values, default=_json_value)
    rows = connection.execute(statement, params).all()
    ids: dict[str, int] = {channel: delivery_id for channel, delivery_id in rows}
    if not ids:
        return False  # the id was taken: nothing was written
    for delivery in new.deliveries:
        delivery.id = ids[delivery.channel]
    return True


def write_one_by_one(connection: Connection, new: NewArticle) -> bool:
    """Write `new` statement by statement, in the caller's transaction; False, with
    nothing written, when the id is taken."""
    inserted = connection.execute(_INSERT_NEW_ARTICLE[connection.dialect.name], columns(new.row))
    if inserted.first() is None:
        return False
    connection.execute(_INSERT_VERSION, [columns(new.first)])
    if new.deliveries:
        ids = connection.execute(_INSERT_DELIVERIES, new.delivery_values).scalars()
        for delivery, delivery_id in zip(new.deliveries, ids, strict=True):
            delivery.id = delivery_id
    return True


def version_row(
    article: Article,
    number: int,
    content_hash: str,
    now: datetime,
    actor: str | None,
    awaiting: bool,
) -> ArticleVersionRow:
    """A version of an article as it is stored; `awaiting`: a writer's, for an editor."""
    return ArticleVersionRow(
        article_id=article.id,
        version=number,
        content_hash=content_hash,
        data=article.to_json(),
        created_at=now,
        actor=actor,
        approval=Approval.AWAITING if awaiting else None,
    )


def new_delivery(version: Version, plan: PlannedDelivery) -> DeliveryRow:
    article, now = version.article, version.now
    row = DeliveryRow(
        article_id=version.row.id,
        article_version=version.row.current_version,
        channel=plan.channel,
        channel_type=plan.channel_type,
        kind=Kind.PUBLISH,
        attempts=0,
        max_attempts=plan.max_attempts,
        published_at=version.row.published_at,
        publish_at=article.publish_at,
        next_attempt_at=article.publish_at if version.scheduled else now,
        enqueued_at=None if version.scheduled else now,
        outcome_unknown=0,
        payload=plan.payload,
        checkpoint={},
        created_at=now,
        updated_at=now,
    )
    return born(row, version.waiting)


def queued(row: DeliveryRow, state: str | None = None) -> Enqueue | None:
    """Enqueue a row that waits in `pending` (its state now, unless `state` says)."""
    pending = (state or row.state) == State.PENDING
    return Enqueue(row.id, row.channel_type) if pending else None


def columns(row: Base) -> dict[str, Any]:
    """The values set on a new row, by column (unset ones take the column's default)."""
    table = cast(Table, row.__table__)
    return {key: value for key, value in inspect(row).dict.items() if key in table.c}


def _json_value(value: object) -> str:
    """Times travel as RFC 3339 text, which PostgreSQL reads back exactly."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in a new delivery")


@functools.cache
def _one_statement(
    article_keys: tuple[str, ...], version_keys: tuple[str, ...], delivery_keys: tuple[str, ...]
) -> TextClause:
    """The article, its version and its deliveries as one PostgreSQL statement,
    for the columns a new row of each sets (the same for every publish). The
    deliveries are one JSON array, read as rows of the table's column types
    (`json_to_recordset`): one parameter, whatever the number of channels."""
    dialect = postgresql.dialect()
    quote = dialect.identifier_preparer.quote

    def names(keys: tuple[str, ...]) -> str:
        return ", ".join(quote(k) for k in keys)

    record = ", ".join(f"{quote(k)} {DELIVERIES.c[k].type.compile(dialect)}" for k in delivery_keys)
    sql = f"""
        WITH article AS (
            INSERT INTO {quote(ARTICLES.name)} ({names(article_keys)})
            VALUES ({", ".join(f":a_{k}" for k in article_keys)})
            ON CONFLICT (id) DO NOTHING
            RETURNING id
        ), version AS (
            INSERT INTO {quote(VERSIONS.name)} ({names(version_keys)})
            SELECT {", ".join(f":v_{k}" for k in version_keys)} FROM article
        )
        INSERT INTO {quote(DELIVERIES.name)} ({names(delivery_keys)})
        SELECT {", ".join(f"plan.{quote(k)}" for k in delivery_keys)}
        FROM article, json_to_recordset(CAST(:deliveries AS json)) AS plan({record})
        RETURNING channel, id
    """
    scalars = [bindparam(f"a_{k}", type_=ARTICLES.c[k].type) for k in article_keys]
    scalars += [bindparam(f"v_{k}", type_=VERSIONS.c[k].type) for k in version_keys]
    return text(sql).bindparams(*scalars)
