"""The approval step in the store, on SQLite and PostgreSQL: nothing a writer posted
reaches a worker, a sweep or a feed build until an editor approves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from publisher.delivery import publishing
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import InputError
from publisher.domain.states import State
from publisher.store import Store
from publisher.store.feed_snapshot import read_feed

BASE: dict[str, Any] = {
    "id": "wait-1",
    "url": "https://news.example.org/wait-1.html",
    "title": "Waiting",
    "body_html": "<p>Body.</p>",
    "published_at": "2026-11-20T08:30:00+08:00",
}


def article(**change: Any) -> Article:
    return parse_article({**BASE, **change})


def submit(store: Store, channels: dict, **change: Any) -> Any:
    return publishing.publish(article(**change), store, channels, actor="wanda", awaiting=True)


def approve(store: Store, channels: dict, **kwargs: Any) -> Any:
    _, stored, _ = store.article("wait-1")
    plans = publishing.plan(stored, list(channels.values()))
    return store.approve("wait-1", plans, actor=kwargs.pop("actor", "chief"), **kwargs)


def states(store: Store) -> dict[str, tuple[str, int]]:
    _, _, rows = store.article("wait-1")
    return {d.channel: (d.state, d.article_version) for d in rows}


def test_nothing_claims_sweeps_arms_or_builds_a_row_awaiting_approval(
    store: Store, channels: dict
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    result = submit(store, channels, publish_at=past.isoformat())
    assert result.to_enqueue == []
    assert set(states(store).values()) == {("awaiting_approval", 1)}
    later = datetime.now(UTC) + timedelta(hours=1)
    assert store.collect_due(requeue_after=0, now=later) == []
    assert store.arm_schedules(within=3600, now=later) == []
    _, _, rows = store.article("wait-1")
    assert all(store.claim(d.id, 60, now=later) is None for d in rows)
    assert read_feed(store, "site", 50, now=later).items == []
    assert set(states(store).values()) == {("awaiting_approval", 1)}


def test_approval_goes_out_now_or_at_the_time_still_ahead(store: Store, channels: dict) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    submit(store, channels, publish_at=ahead.isoformat())
    assert approve(store, channels) == []
    _, _, rows = store.article("wait-1")
    assert {(d.state, d.publish_at) for d in rows} == {("scheduled", ahead)}
    assert store.approval("wait-1") == (1, "approved", "wanda")

    # Approved after its time has passed: it goes now.
    submit(store, channels, title="Second", publish_at=ahead.isoformat())
    queued = approve(store, channels, now=ahead + timedelta(minutes=1))
    assert len(queued) == 2
    assert set(states(store).values()) == {("pending", 2)}


def test_a_post_in_flight_keeps_the_approved_version_until_the_next_approval(
    store: Store, channels: dict
) -> None:
    publishing.publish(article(), store, channels, actor="chief")  # an editor's: no approval
    _, _, rows = store.article("wait-1")
    site = next(d for d in rows if d.channel == "site")
    claim = store.claim(site.id, 60)
    assert claim is not None
    submit(store, channels, title="Unapproved title")
    assert states(store) == {"site": ("sending", 1), "app": ("awaiting_approval", 2)}
    now = datetime.now(UTC)
    assert store.record_delivered(
        claim, remote_id="x", remote_url=None, started_at=now, duration_ms=1
    )
    delivered = store.delivery(site.id)
    assert (delivered.state, delivered.article_version) == ("delivered", 1)
    assert delivered.payload is not None and "Unapproved" not in str(delivered.payload)

    queued = approve(store, channels, version=2)
    assert {q.delivery_id for q in queued} == {d.id for d in rows}
    assert set(states(store).values()) == {("pending", 2)}
    assert "Unapproved title" in str(store.delivery(site.id).payload)
    assert [a.outcome for a in store.attempts(site.id)] == ["delivered", "approved"]


def test_a_writers_new_time_waits_again_and_an_editors_version_lets_it_out(
    store: Store, channels: dict
) -> None:
    first = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    second = first + timedelta(hours=1)
    submit(store, channels, publish_at=first.isoformat())
    # Same content, a new time: it keeps waiting, with the new time.
    again = submit(store, channels, publish_at=second.isoformat())
    assert again.rescheduled and not again.changed
    _, _, rows = store.article("wait-1")
    assert {(d.state, d.publish_at) for d in rows} == {("awaiting_approval", second)}
    approve(store, channels)
    # A writer moving an approved schedule: it waits for an editor again.
    submit(store, channels, publish_at=first.isoformat())
    _, _, rows = store.article("wait-1")
    assert {(d.state, d.publish_at) for d in rows} == {("awaiting_approval", first)}
    assert store.approval("wait-1")[1] == "awaiting"
    # An editor's own new version needs no approval: it supersedes the writer's.
    edited = article(title="Editor's", publish_at=first.isoformat())
    publishing.publish(edited, store, channels, actor="chief")
    assert {s for s, _ in states(store).values()} == {"scheduled"}
    assert store.approval("wait-1") == (2, None, "chief")


def test_reject_retract_and_the_checks(store: Store, channels: dict) -> None:
    submit(store, channels)
    with pytest.raises(InputError, match="another editor must approve"):
        approve(store, channels, actor="wanda")
    with pytest.raises(InputError, match="version 3 is not the one awaiting approval"):
        approve(store, channels, version=3)
    with pytest.raises(InputError, match="longer than 500"):
        store.reject("wait-1", "x" * 501, actor="chief")
    assert store.reject("wait-1", "Needs  a second\nsource", actor="chief") == 2
    _, _, rows = store.article("wait-1")
    assert {(d.state, d.last_error) for d in rows} == {
        ("cancelled", "rejected by chief: Needs a second source")
    }
    with pytest.raises(InputError, match="which is rejected"):
        store.retry(rows[0].id, actor="chief")
    with pytest.raises(InputError, match="no version awaiting approval"):
        store.reject("wait-1", "again", actor="chief")

    # Retracting a waiting article cancels what waits; nothing had gone out to remove.
    submit(store, channels, title="Another try")
    assert store.retract("wait-1", {"site": True, "app": True}, actor="chief") == []
    assert {s for s, _ in states(store).values()} == {State.CANCELLED}
