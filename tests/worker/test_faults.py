"""Fault injection through real workers: nothing lost, nothing posted twice.

CI runs these in a short form; `PUBLISHER_FAULT_ARTICLES` makes them longer.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis

from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox.server import BackgroundServer
from tests.support.receiver import Receiver
from tests.worker.test_worker import hook_article, make_stack  # noqa: F401 - fixture

ARTICLES = int(os.environ.get("PUBLISHER_FAULT_ARTICLES", "8"))

pytestmark = pytest.mark.slow


@pytest.fixture
def slow_receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver(delay=0.6)
    with BackgroundServer(rec.app()) as server:
        yield rec, f"{server.url}/hook"


def channels(url: str) -> dict[str, dict[str, object]]:
    return {
        "site": {"type": "rss"},
        "app": {"type": "app_feed"},
        "hook": {"type": "webhook", "base_url": url, "backoff_base": 0.2},
    }


def assert_delivered_exactly_once(stack: Stack, rec: Receiver, ids: list[str]) -> None:
    store = stack.runtime.store
    deliveries = store.deliveries(article_ids=ids, limit=10_000)
    assert len(deliveries) == 3 * len(ids)
    assert Counter(d.state for d in deliveries) == {State.DELIVERED: 3 * len(ids)}
    for delivery in deliveries:
        outcomes = [a.outcome for a in store.attempts(delivery.id)]
        assert outcomes.count("delivered") == 1, (delivery.id, outcomes)
    # At the remote: one post per article, whatever was retried on the wire.
    assert sorted(p["id"] for p in rec.posts.values()) == sorted(ids)
    stack.wait_until(lambda: not any(store.feed_changed_since_build(c) for c in ("site", "app")))
    assert store.feed_document("app.json") is not None
    assert store.feed_document("app.json").items == len(ids)  # type: ignore[union-attr]


def test_worker_sigkilled_mid_delivery(
    make_stack: Callable[..., Stack],  # noqa: F811
    slow_receiver: tuple[Receiver, str],
) -> None:
    rec, url = slow_receiver
    stack = make_stack(channels(url))
    first = stack.start_worker()
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in range(ARTICLES)]
    stack.wait_until(lambda: rec.in_flight > 0, timeout=30)
    stack.kill(first)  # SIGKILL to the whole worker: main process and its children
    in_flight_at_kill = {key for _, key in rec.requests}
    stack.start_worker()
    stack.wait_settled(ids, timeout=120)
    assert_delivered_exactly_once(stack, rec, ids)
    resent = [key for key, n in Counter(key for _, key in rec.requests).items() if n > 1]
    assert set(resent) <= in_flight_at_kill  # only interrupted sends were repeated


def test_redis_flushed_right_after_publishing(
    make_stack: Callable[..., Stack],  # noqa: F811
    slow_receiver: tuple[Receiver, str],
) -> None:
    rec, url = slow_receiver
    rec.delay = 0.05
    stack = make_stack(channels(url), embedded=True)
    stack.start_worker()
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in range(ARTICLES)]
    redis.Redis.from_url(stack.runtime.location.client_url).flushall()
    started = time.monotonic()
    stack.wait_settled(ids, timeout=120)
    assert_delivered_exactly_once(stack, rec, ids)
    assert time.monotonic() - started < 60
