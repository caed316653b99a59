"""End to end through real Celery worker processes and a real Redis."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
import redis

from publisher.domain.article import load_article_file, parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox.server import BackgroundServer
from tests.conftest import SAMPLES, TEST_REDIS_URL
from tests.support.receiver import Receiver

FEEDS = {"site": {"type": "rss"}, "app": {"type": "app_feed"}}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with BackgroundServer(rec.app()) as server:
        yield rec, f"{server.url}/hook"


@pytest.fixture
def make_stack(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def build(channels: dict[str, dict[str, Any]], *, embedded: bool = False, **env: str) -> Stack:
        prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
        stack = Stack(
            tmp_path,
            channels,
            redis_url=None if embedded else TEST_REDIS_URL,
            prefix=prefix,
            env=env,
        )
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.close()
        if not stack.settings.embedded_redis:
            for key in redis_client.scan_iter(match=f"{stack.settings.redis_prefix}*"):
                redis_client.delete(key)


def hook_article(n: int) -> Any:
    return parse_article({
        "id": f"hook-{n}", "url": f"https://news.example.org/h{n}", "title": f"Hook {n}",
        "body_html": f"<p>Body {n}.</p>", "published_at": "2026-11-20T08:00:00+08:00",
    })  # fmt: skip


@pytest.mark.parametrize("embedded", [True, False], ids=["embedded-redis", "machine-redis"])
def test_samples_reach_both_feeds(make_stack: Callable[..., Stack], embedded: bool) -> None:
    stack = make_stack(FEEDS, embedded=embedded)
    stack.start_worker()
    ids = [
        stack.runtime.publish(load_article_file(SAMPLES / name)).article_id
        for name in ("digital-talent.json", "skills-contest.md")
    ]
    stack.wait_settled(ids)
    store = stack.runtime.store
    assert {d.state for d in store.deliveries(article_ids=ids)} == {State.DELIVERED}
    stack.wait_until(lambda: not any(store.feed_changed_since_build(c) for c in FEEDS))
    rss = feedparser.parse((stack.settings.feeds_dir / "rss.xml").read_bytes())
    assert len(rss.entries) == 2 and not rss.bozo
    app = json.loads((stack.settings.feeds_dir / "app.json").read_text())
    assert [i["title"][:4] for i in app["items"]] == ["全国数字", "Cont"]


def test_permanent_error_fails_after_one_attempt(
    make_stack: Callable[..., Stack], receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.fail_next(422)
    stack = make_stack({"hook": {"type": "webhook", "base_url": url}})
    stack.start_worker()
    stack.runtime.publish(hook_article(1))
    stack.wait_settled(["hook-1"])
    (delivery,) = stack.runtime.store.deliveries(article_ids=["hook-1"])
    assert delivery.state == State.FAILED and delivery.attempts == 1
    assert delivery.last_error == "webhook rejected the article (HTTP 422)"
    assert [(a.outcome, a.http_status) for a in stack.runtime.store.attempts(delivery.id)] == [
        ("failed", 422)
    ]


def test_retryable_error_is_retried_with_growing_delays(
    make_stack: Callable[..., Stack], receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.fail_next(503, times=3)
    base = 0.4
    stack = make_stack({"hook": {"type": "webhook", "base_url": url, "backoff_base": base}})
    stack.start_worker()
    stack.runtime.publish(hook_article(2))
    stack.wait_settled(["hook-2"])
    (delivery,) = stack.runtime.store.deliveries(article_ids=["hook-2"])
    assert delivery.state == State.DELIVERED and delivery.remote_id == "1"
    log = stack.runtime.store.attempts(delivery.id)
    assert [a.outcome for a in log] == ["retry", "retry", "retry", "delivered"]
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(log)]
    for n, gap in enumerate(gaps, start=1):
        assert gap >= base * 2 ** (n - 1) / 2  # at least half of each exponential step
    assert gaps[2] > gaps[0]
    assert len(rec.posts) == 1


def test_retry_after_is_honoured_and_attempts_are_capped(
    make_stack: Callable[..., Stack], receiver: tuple[Receiver, str]
) -> None:
    """A 503 with Retry-After is a failed attempt that waits at least as long as
    asked. (A 429 is the account's limit, not the delivery's failure: it holds the
    account and spends no attempt, `tests/delivery/test_held.py`.)"""
    rec, url = receiver
    rec.fail_next(503, times=5, headers={"Retry-After": "1"})
    stack = make_stack(
        {"hook": {"type": "webhook", "base_url": url, "backoff_base": 0.05, "max_attempts": 3}}
    )
    stack.start_worker()
    stack.runtime.publish(hook_article(3))
    stack.wait_settled(["hook-3"])
    (delivery,) = stack.runtime.store.deliveries(article_ids=["hook-3"])
    assert delivery.state == State.FAILED and delivery.attempts == 3
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("gave up after 3 attempts: webhook: platform error")
    log = stack.runtime.store.attempts(delivery.id)
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in itertools.pairwise(log)]
    assert all(gap >= 1.0 for gap in gaps)


def test_editor_retry_of_a_failed_delivery(
    make_stack: Callable[..., Stack], receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.fail_next(400)
    stack = make_stack({"hook": {"type": "webhook", "base_url": url}})
    stack.start_worker()
    stack.runtime.publish(hook_article(4))
    stack.wait_settled(["hook-4"])
    (failed,) = stack.runtime.store.deliveries(article_ids=["hook-4"])
    assert failed.state == State.FAILED
    stack.runtime.dispatcher.enqueue([stack.runtime.store.retry(failed.id, actor="desk")])
    stack.wait_settled(["hook-4"])
    assert stack.runtime.store.delivery(failed.id).state == State.DELIVERED
    outcomes = [(a.outcome, a.actor) for a in stack.runtime.store.attempts(failed.id)]
    assert outcomes == [("failed", None), ("retry", "desk"), ("delivered", None)]
