"""The delivery store on SQLite and on PostgreSQL: transactions, CAS claims, fencing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from publisher.delivery import publishing
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import InputError
from publisher.domain.states import State
from publisher.store import Store
from publisher.store.models import ArticleRow, DeliveryRow

BASE: dict[str, Any] = {
    "id": "store-1",
    "url": "https://news.example.org/store-1.html",
    "title": "Store test",
    "body_html": "<p>Body.</p>",
    "published_at": "2026-11-20T08:30:00+08:00",
}


def article(**change: Any) -> Article:
    return parse_article({**BASE, **change})


def test_publish_stores_article_and_one_delivery_per_channel(store: Store, channels: dict) -> None:
    result = publishing.publish(article(), store, channels)
    assert result.created and result.changed and result.version == 1
    assert len(result.to_enqueue) == 2
    _, stored, deliveries = store.article("store-1")
    assert stored.title == "Store test"
    assert {d.channel: d.state for d in deliveries} == {"site": "pending", "app": "pending"}
    assert all(d.payload and d.payload["title"] == "Store test" for d in deliveries)


def test_same_content_again_creates_nothing(store: Store, channels: dict) -> None:
    publishing.publish(article(), store, channels)
    again = publishing.publish(article(), store, channels)
    assert not again.created and not again.changed and again.to_enqueue == []
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryRow)) == 2


def test_changed_content_is_a_new_version_and_resends_feeds(store: Store, channels: dict) -> None:
    first = publishing.publish(article(), store, channels)
    for item in first.to_enqueue:
        claim = store.claim(item.delivery_id, 60)
        assert claim is not None
        now = datetime.now(UTC)
        assert store.record_delivered(
            claim, remote_id="x", remote_url=None, started_at=now, duration_ms=1
        )
    second = publishing.publish(article(title="Corrected title"), store, channels)
    assert second.changed and second.version == 2 and len(second.to_enqueue) == 2
    _, stored, deliveries = store.article("store-1")
    assert stored.title == "Corrected title"
    assert all(d.state == "pending" and d.article_version == 2 for d in deliveries)


def test_rejected_article_stores_nothing(store: Store, channels: dict) -> None:
    with pytest.raises(InputError) as caught:
        publishing.publish(article(channels=["site", "nope"]), store, channels)
    assert caught.value.field == "channels"
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(ArticleRow)) == 0


def test_only_one_of_many_racing_workers_claims(store: Store, channels: dict) -> None:
    delivery_id = publishing.publish(article(), store, channels).to_enqueue[0].delivery_id
    wins: list[object] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        claim = store.claim(delivery_id, 60)
        if claim is not None:
            wins.append(claim)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_expired_lease_is_taken_over_and_the_old_worker_is_fenced(
    store: Store, channels: dict
) -> None:
    delivery_id = publishing.publish(article(), store, channels).to_enqueue[0].delivery_id
    now = datetime.now(UTC)
    first = store.claim(delivery_id, 60, now=now)
    assert first is not None and not first.outcome_unknown
    assert store.claim(delivery_id, 60, now=now + timedelta(seconds=30)) is None
    second = store.claim(delivery_id, 60, now=now + timedelta(seconds=61))
    assert second is not None and second.outcome_unknown and second.attempt == 2
    assert not store.record_delivered(
        first, remote_id="a", remote_url=None, started_at=now, duration_ms=1
    )
    assert store.record_delivered(
        second, remote_id="b", remote_url=None, started_at=now, duration_ms=1
    )
    row = store.delivery(delivery_id)
    assert row.state == State.DELIVERED and row.remote_id == "b"
    assert [a.outcome for a in store.attempts(delivery_id)] == ["delivered"]


def test_sweeper_query_finds_lost_work_and_releases_schedules(store: Store, channels: dict) -> None:
    now = datetime.now(UTC)
    publishing.publish(article(), store, channels)
    publishing.publish(
        article(id="later", publish_at=(now + timedelta(minutes=5)).isoformat()), store, channels
    )
    assert store.collect_due(requeue_after=30, now=now) == []  # just enqueued
    lost = store.collect_due(requeue_after=30, now=now + timedelta(seconds=31))
    assert len(lost) == 2
    assert store.collect_due(requeue_after=30, now=now + timedelta(seconds=32)) == []
    released = store.collect_due(requeue_after=30, now=now + timedelta(minutes=6))
    assert {store.delivery(e.delivery_id).article_id for e in released} == {"later", "store-1"}


def test_retry_and_cancel_follow_the_state_machine(store: Store, channels: dict) -> None:
    delivery_id = publishing.publish(article(), store, channels).to_enqueue[0].delivery_id
    with pytest.raises(InputError, match="only failed"):
        store.retry(delivery_id)
    store.cancel(delivery_id, actor="desk")
    assert store.delivery(delivery_id).state == State.CANCELLED
    store.retry(delivery_id, actor="desk")
    assert store.delivery(delivery_id).state == State.PENDING
    assert [a.outcome for a in store.attempts(delivery_id)] == ["cancelled", "retry"]
    assert {a.actor for a in store.attempts(delivery_id)} == {"desk"}


def test_a_channels_notes_reach_the_delivered_attempt_in_the_log(
    store: Store, channels: dict
) -> None:
    """What a channel did differently (an image left out) is named where the editor looks."""
    delivery_id = publishing.publish(article(), store, channels).to_enqueue[0].delivery_id
    claim = store.claim(delivery_id, 60)
    assert claim is not None
    notes = ["body image photo.jpg left out, its alt text kept: could not connect"]
    assert store.record_delivered(
        claim, remote_id="x", remote_url="https://example.org/p/1",
        started_at=datetime.now(UTC), duration_ms=1, notes=notes,
    )  # fmt: skip
    logged = store.attempts(delivery_id)[-1]
    assert logged.outcome == "delivered"
    assert logged.message == "https://example.org/p/1; " + notes[0]
