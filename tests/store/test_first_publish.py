"""A new article's first publish (`publisher.store.first_publish`): the rows it
writes are the same on both databases, whatever the payloads hold, and on
PostgreSQL they are written by one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, select

from publisher.domain.article import Article, parse_article
from publisher.domain.states import Approval, State
from publisher.store import Store
from publisher.store.models import ArticleVersionRow
from publisher.store.records import PlannedDelivery

#: What a payload may hold that a text encoding could get wrong on the way.
AWKWARD = {
    "title": "Quotes \" and ' and a back\\slash, {braces}, [brackets], commas, ,",
    "body": "中文标题：市议会 — émigré ☕ 🗞️ and a tab\t and a newline\n",
    "escaped": "\\u0041 is not A",
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}, "none": None},
    "big": 2**53,
}
BEIJING = timezone(timedelta(hours=8))


def article(article_id: str = "first-1", **change: Any) -> Article:
    fields: dict[str, Any] = {
        "id": article_id,
        "url": f"https://news.example.org/{article_id}.html",
        "title": "First publish",
        "body_html": "<p>Body.</p>",
        "published_at": "2026-11-20T08:30:00+08:00",
    }
    return parse_article({**fields, **change})


def plans() -> list[PlannedDelivery]:
    return [
        PlannedDelivery("hook", "webhook", 5, {**AWKWARD, "n": 1}),
        PlannedDelivery("微博", "weibo", 7, {**AWKWARD, "n": 2}),
        PlannedDelivery("site", "rss", 3, {}),
    ]


def test_a_new_article_stores_every_value_as_given(store: Store) -> None:
    now = datetime(2026, 11, 20, 1, 0, 0, 123456, tzinfo=UTC)
    result = store.publish(article(), plans(), actor="desk", now=now)
    assert result.created and result.changed and result.version == 1

    row, stored, deliveries = store.article("first-1")
    assert (row.current_version, row.actor, row.retracted_at) == (1, "desk", None)
    assert row.published_at == datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    assert stored == article()
    by_channel = {d.channel: d for d in deliveries}
    assert list(by_channel) == ["hook", "微博", "site"]  # ids in the order of the plans
    for plan in plans():
        delivery = by_channel[plan.channel]
        assert delivery.payload == plan.payload
        assert (delivery.channel_type, delivery.max_attempts) == (
            plan.channel_type,
            plan.max_attempts,
        )
        assert (delivery.state, delivery.kind, delivery.attempts) == (State.PENDING, "publish", 0)
        assert delivery.article_version == 1 and delivery.checkpoint == {}
        assert delivery.created_at == delivery.updated_at == delivery.next_attempt_at == now
        assert delivery.enqueued_at == now and delivery.publish_at is None
        assert delivery.published_at == row.published_at
        assert delivery.lease_token is None and delivery.last_error is None
    assert [(e.delivery_id, e.channel_type) for e in result.to_enqueue] == [
        (d.id, d.channel_type) for d in deliveries
    ]


def test_a_scheduled_article_awaiting_approval_keeps_its_time_and_waits(store: Store) -> None:
    now = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    at = datetime(2026, 11, 21, 7, 45, tzinfo=BEIJING)
    scheduled = article(publish_at=at.isoformat(), published_at=None)
    result = store.publish(scheduled, plans(), awaiting=True, now=now)
    assert result.created and result.to_enqueue == []

    row, _, deliveries = store.article("first-1")
    assert row.published_at == at
    assert {d.state for d in deliveries} == {State.AWAITING_APPROVAL}
    assert all(d.publish_at == d.next_attempt_at == at for d in deliveries)
    assert all(d.enqueued_at is None for d in deliveries)
    with store.session() as session:
        version = session.scalars(select(ArticleVersionRow)).one()
    assert version.approval == Approval.AWAITING


def test_a_taken_id_writes_nothing_new_and_publishes_a_version(store: Store) -> None:
    store.publish(article(), plans())
    again = store.publish(article(title="Changed"), plans())
    assert not again.created and again.version == 2
    _, stored, deliveries = store.article("first-1")
    assert stored.title == "Changed" and len(deliveries) == 3


def test_on_postgresql_a_new_article_is_one_statement(store: Store, statements: list[str]) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs in-process: its three INSERTs cost no round trips")
    store.publish(article(), plans())
    writes = [s for s in statements if not s.lstrip().upper().startswith("SELECT 1")]
    assert len(writes) == 1, writes


def test_on_postgresql_the_statement_is_its_own_transaction(store: Store) -> None:
    """No BEGIN and COMMIT round trips around the one statement; and the pooled
    connection it used is transactional again for the next writer."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs in-process: BEGIN and COMMIT cost no round trips")
    autocommit: list[tuple[str, bool]] = []

    def record(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT 1"):
            autocommit.append((statement.split()[0].upper(), cursor.connection.autocommit))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.publish(article(), plans())
        first = list(autocommit)
        autocommit.clear()
        store.publish(article(title="Changed"), plans())  # a new version: a transaction
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert first == [("WITH", True)]
    assert autocommit[0] == ("WITH", True)  # the id is taken: nothing written...
    assert autocommit[1:] and not any(on for _, on in autocommit[1:])  # ...then a transaction
