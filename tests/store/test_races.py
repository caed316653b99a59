"""Editors racing workers for the same row, with real threads on SQLite and
PostgreSQL: each round exactly one side wins, never both."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from publisher.delivery import publishing
from publisher.domain.article import parse_article
from publisher.domain.states import Kind, State
from publisher.store import Claim, Store

ROUNDS = 30


def _article(n: int, **change: Any) -> Any:
    return parse_article(
        {"id": f"race-{n}", "url": f"https://news.example.org/race-{n}", "title": f"Race {n}",
         "body_html": "<p>Body.</p>", **change}
    )  # fmt: skip


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on threads released together; their results, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def _delivered(store: Store, claim: Claim) -> bool:
    now = datetime.now(UTC)
    return store.record_delivered(
        claim, remote_id="post-1", remote_url=None, started_at=now, duration_ms=1
    )


def test_retract_against_a_workers_claim_one_wins_never_both(store: Store, channels: dict) -> None:
    claimed = cancelled = 0
    removable = {name: True for name in channels}
    for n in range(ROUNDS):
        result = publishing.publish(_article(n), store, channels)
        delivery_id = result.to_enqueue[0].delivery_id
        queued, claim = _at_once(
            lambda n=n: store.retract(f"race-{n}", removable, actor="desk"),
            lambda delivery_id=delivery_id: store.claim(delivery_id, 60),
        )
        row = store.delivery(delivery_id)
        removals = {
            d.channel for d in store.deliveries(article_ids=[f"race-{n}"]) if d.kind == Kind.RETRACT
        }
        if claim is not None:
            # The worker won: its row is still its own, it may send, and the
            # retraction follows it with a removal of what it sends.
            claimed += 1
            assert row.state == State.SENDING and row.lease_token == claim.token
            assert row.channel in removals
            assert _delivered(store, claim)
            assert store.delivery(delivery_id).state == State.DELIVERED
        else:
            # The editor won: cancelled, nothing to remove, and no worker can take it.
            cancelled += 1
            assert row.state == State.CANCELLED
            assert row.channel not in removals
            assert store.claim(delivery_id, 60) is None
        outcomes = [a.outcome for a in store.attempts(delivery_id)]
        assert ("cancelled" in outcomes) == (claim is None), outcomes
        assert len(queued) == len(removals)
    assert claimed + cancelled == ROUNDS


def test_a_new_version_against_a_workers_claim_is_never_lost(store: Store, channels: dict) -> None:
    """A re-post racing a claim: either the worker takes the new version, or it
    sends the old one and the new version is sent after it; the worker's
    outcome is never overwritten, and the new version is never marked
    delivered unsent."""
    for n in range(ROUNDS):
        first = publishing.publish(_article(n), store, channels)
        delivery_id = first.to_enqueue[0].delivery_id
        result, claim = _at_once(
            lambda n=n: publishing.publish(
                _article(n, title=f"Race {n}, corrected"), store, channels
            ),
            lambda delivery_id=delivery_id: store.claim(delivery_id, 60),
        )
        assert result.changed and result.version == 2
        row = store.delivery(delivery_id)
        if claim is None:  # the new version came first and no worker holds it
            assert row.state == State.PENDING and row.article_version == 2
            continue
        assert row.state == State.SENDING and row.lease_token == claim.token
        assert _delivered(store, claim)
        after = store.delivery(delivery_id)
        if claim.article_version == 2:
            assert after.state == State.DELIVERED
        else:  # it sent version 1 while version 2 was written: it goes again
            assert after.state == State.PENDING and after.article_version == 2


def test_a_post_in_flight_when_retracted_is_not_retried_after_it_fails(
    store: Store, channels: dict
) -> None:
    delivery_id = publishing.publish(_article(0), store, channels).to_enqueue[0].delivery_id
    claim = store.claim(delivery_id, 60)
    assert claim is not None
    store.retract("race-0", {name: True for name in channels}, actor="desk")
    now = datetime.now(UTC)
    assert store.record_failure(
        claim, outcome="retry", reason="timeout", code=None, http_status=None,
        started_at=now, duration_ms=1, retry_at=now, outcome_unknown=True,
    ) == []  # fmt: skip
    assert store.delivery(delivery_id).state == State.CANCELLED
    assert store.claim(delivery_id, 60) is None


def test_two_first_publishes_of_one_article_store_it_once(store: Store, channels: dict) -> None:
    """Two editors (or a retried request) publish the same new article at the
    same instant: one creates it, the other finds it there, and neither fails."""
    for n in range(ROUNDS):
        first, second = _at_once(
            lambda n=n: publishing.publish(_article(1000 + n), store, channels),
            lambda n=n: publishing.publish(_article(1000 + n), store, channels),
        )
        assert sorted([first.created, second.created]) == [False, True]
        assert first.version == second.version == 1
        assert len(store.deliveries(article_ids=[f"race-{1000 + n}"])) == len(channels)
