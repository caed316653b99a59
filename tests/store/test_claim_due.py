"""A drain's batch claim and its outcomes, on SQLite and PostgreSQL: one
statement takes a batch, racing drains never share a row, and a batch's
outcomes commit together while each stays fenced by its row's lease."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from publisher.domain.article import parse_article
from publisher.domain.states import State
from publisher.store import Claim, PlannedDelivery, Store
from publisher.store.outcomes import Delivered


def _publish(store: Store, n: int, types: tuple[str, ...] = ("webhook",)) -> list[int]:
    article = parse_article(
        {"id": f"due-{n}", "url": f"https://news.example.org/due-{n}", "title": f"Due {n}",
         "body_html": "<p>Body.</p>"}
    )  # fmt: skip
    planned = [
        PlannedDelivery(channel=f"{kind}-ch", channel_type=kind, max_attempts=3, payload={})
        for kind in types
    ]
    return [item.delivery_id for item in store.publish(article, planned).to_enqueue]


def test_a_batch_is_the_oldest_due_rows_of_one_type_under_one_token(store: Store) -> None:
    ids = [i for n in range(6) for i in _publish(store, n, ("webhook", "weibo"))]
    webhook = [i for i in ids if store.delivery(i).channel_type == "webhook"]
    held = store.claim(webhook[0], 60)  # another worker holds the oldest
    assert held is not None

    batch = store.claim_due("webhook", 3, 60)

    assert [c.delivery_id for c in batch] == webhook[1:4]
    assert {c.token for c in batch} != {held.token} and len({c.token for c in batch}) == 1
    assert all(c.attempt == 1 and c.channel_type == "webhook" for c in batch)
    for claim in batch:
        row = store.delivery(claim.delivery_id)
        assert row.state == State.SENDING and row.lease_token == claim.token
    assert [c.delivery_id for c in store.claim_due("webhook", 10, 60)] == webhook[4:]
    assert store.claim_due("webhook", 10, 60) == []
    assert len(store.claim_due("weibo", 10, 60)) == 6


def test_expired_leases_are_taken_over_with_their_outcome_unknown(store: Store) -> None:
    (delivery_id,) = _publish(store, 1)
    now = datetime.now(UTC)
    assert store.claim(delivery_id, 5, now=now) is not None  # its worker dies
    assert store.claim_due("webhook", 10, 60, now=now + timedelta(seconds=1)) == []
    (taken,) = store.claim_due("webhook", 10, 60, now=now + timedelta(seconds=6))
    assert taken.delivery_id == delivery_id and taken.outcome_unknown and taken.attempt == 2


def test_racing_drains_never_take_the_same_row(store: Store) -> None:
    ids = [i for n in range(60) for i in _publish(store, n)]
    taken: list[list[int]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def drain(slot: int) -> None:
        barrier.wait()
        while batch := store.claim_due("webhook", 7, 60):
            taken[slot].extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [i for part in taken for i in part]
    assert sorted(everything) == sorted(ids)  # every row once: none twice, none missed


def test_a_batch_commits_together_and_a_lost_lease_only_loses_its_own_row(store: Store) -> None:
    for n in range(3):
        _publish(store, n)
    now = datetime.now(UTC)
    first, second, third = store.claim_due("webhook", 3, 5, now=now)
    # The second's lease ended and another drain took it over meanwhile.
    takeover = store.claim(second.delivery_id, 60, now=now + timedelta(seconds=6))
    assert takeover is not None

    with store.outcomes() as writes:
        args = dict(remote_url=None, started_at=now, duration_ms=3)
        assert writes.delivered(first, remote_id="a", **args)
        assert not writes.delivered(second, remote_id="b", **args)  # not its lease any more
        assert writes.release([third]) == 1

    assert store.delivery(first.delivery_id).state == State.DELIVERED
    assert store.delivery(second.delivery_id).lease_token == takeover.token
    given_back = store.delivery(third.delivery_id)
    assert given_back.state == State.PENDING and given_back.attempts == 0
    assert [a.outcome for a in store.attempts(third.delivery_id)] == []


def _receipts(claims: list[Claim], now: datetime) -> list[Delivered]:
    return [
        Delivered(c, remote_id=f"post-{c.delivery_id}", remote_url=f"https://m.example/{n}",
                  started_at=now, duration_ms=n + 1, notes=("cover left out",) if n else ())
        for n, c in enumerate(claims)
    ]  # fmt: skip


def test_a_batch_of_receipts_records_each_as_its_lease_and_version_allow(store: Store) -> None:
    for n in range(4):
        _publish(store, n)
    now = datetime.now(UTC)
    kept, lost, changed, last = store.claim_due("webhook", 4, 5, now=now)
    takeover = store.claim(lost.delivery_id, 60, now=now + timedelta(seconds=6))
    assert takeover is not None
    edited = parse_article(
        {"id": "due-2", "url": "https://news.example.org/due-2", "title": "Due 2, corrected",
         "body_html": "<p>Body.</p>"}
    )  # fmt: skip
    store.publish(edited, [PlannedDelivery("webhook-ch", "webhook", 3, {})])  # while in flight

    with store.outcomes() as writes:
        recorded = writes.delivered_all(_receipts([kept, lost, changed, last], now))

    assert recorded == [True, False, True, True]
    for claim in (kept, last):
        row = store.delivery(claim.delivery_id)
        assert row.state == State.DELIVERED and row.lease_token is None
        assert row.remote_id == f"post-{claim.delivery_id}"
    assert store.delivery(last.delivery_id).remote_url == "https://m.example/3"
    assert [(a.outcome, a.message, a.duration_ms) for a in store.attempts(last.delivery_id)] == [
        ("delivered", "https://m.example/3; cover left out", 4)
    ]
    assert store.delivery(lost.delivery_id).lease_token == takeover.token  # untouched
    assert store.attempts(lost.delivery_id) == []
    again = store.delivery(changed.delivery_id)  # sent at version 1: due again with version 2
    assert again.state == State.PENDING and again.article_version == 2
    assert again.remote_id == f"post-{changed.delivery_id}"  # what the next attempt updates


def test_on_postgresql_a_batch_of_receipts_is_one_statement(
    store: Store, statements: list[str]
) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs in-process: a statement per row costs no round trip")
    for n in range(20):
        _publish(store, n)
    claims = store.claim_due("webhook", 20, 60)
    statements.clear()
    with store.outcomes() as writes:
        assert writes.delivered_all(_receipts(claims, datetime.now(UTC))) == [True] * 20
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1, updates
    assert all(store.delivery(c.delivery_id).state == State.DELIVERED for c in claims)
