"""Coalesced feed rebuilds through real worker processes and the machine's Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import feedparser
import redis

from publisher.domain.article import parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from tests.worker.test_worker import make_stack  # noqa: F401 - the shared stack fixture

FEEDS = {"site": {"type": "rss"}, "app": {"type": "app_feed"}}


def article(n: int) -> object:
    return parse_article({
        "id": f"burst-{n}", "url": f"https://news.example.org/b{n}", "title": f"Burst {n}",
        "body_html": f"<p>Body {n}.</p>", "published_at": f"2026-11-20T08:{n % 60:02d}:00+08:00",
    })  # fmt: skip


def test_a_burst_under_several_workers_costs_a_handful_of_rebuilds(
    make_stack: Callable[..., Stack],  # noqa: F811
) -> None:
    stack = make_stack(FEEDS)
    stack.start_worker(concurrency=2)
    stack.start_worker(beat=False, concurrency=2)
    warm = stack.runtime.publish(article(999)).article_id  # type: ignore[arg-type]
    stack.wait_settled([warm])  # the workers are up: the burst meets running rebuilds
    started = time.monotonic()
    ids = [stack.runtime.publish(article(n)).article_id for n in range(200)]  # type: ignore[arg-type]
    took = time.monotonic() - started
    stack.wait_settled(ids)
    rows = stack.runtime.store.deliveries(article_ids=ids, limit=1000)
    assert {d.state for d in rows} == {State.DELIVERED}
    for channel in FEEDS:
        builds = {d.remote_id for d in rows if d.channel == channel}
        # The first publish's rebuild, its follow-up (at once if that round was quiet),
        # then at most one per spacing while the burst lasts, and one for its tail.
        spacing = stack.settings.feed_rebuild_spacing
        assert 1 <= len(builds) <= math.floor(took / spacing) + 3, (
            channel, len(builds), took,
        )  # fmt: skip


def test_a_rebuild_lost_with_its_worker_is_covered_once_its_lease_ends(
    make_stack: Callable[..., Stack],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    stack = make_stack(FEEDS, PUBLISHER_FEED_REBUILD_LEASE="2")
    stack.start_worker()
    # What a worker killed mid-rebuild leaves behind: the channel's hold, unreleased.
    for channel in FEEDS:
        key = stack.settings.key("feed-rebuild-running", channel)
        seconds, micros = redis_client.time()
        redis_client.zadd(key, {"dead-worker": seconds * 1000 + micros // 1000 + 2000})
    started = time.monotonic()
    published = stack.runtime.publish(article(1))  # type: ignore[arg-type]
    stack.wait_settled([published.article_id], timeout=30)
    assert time.monotonic() - started >= 1.0  # it waited for the lease, not a no-op
    rss = feedparser.parse((stack.settings.feeds_dir / "rss.xml").read_bytes())
    assert [e.title for e in rss.entries] == ["Burst 1"]
