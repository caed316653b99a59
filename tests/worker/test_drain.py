"""Drains through real worker processes, real Redis and a loopback webhook
receiver: a burst goes out in a few tasks, each post once, and a drain killed
mid-batch loses nothing and posts nothing twice."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from mastodon import Mastodon, MastodonNotFoundError
from mastodon_mock.testing.server import MockServer

from publisher.delivery.drain import drain
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from tests.channels.conftest import MASTODON_TOKEN
from tests.support.receiver import Receiver
from tests.worker.test_worker import hook_article
from tests.worker.test_worker import make_stack as make_stack
from tests.worker.test_worker import receiver as receiver

TOKEN_ENV = "PUBLISHER_TEST_MASTODON_TOKEN"


def tasks_run(stack: Stack) -> dict[str, int]:
    """How many of each task the workers finished, from their logs."""
    counts: dict[str, int] = {}
    for log in stack.settings.data_dir.glob("worker-*.log"):
        for name in re.findall(r"Task (publisher\.\w+)\[[^\]]+\] succeeded", log.read_text()):
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_a_burst_is_sent_by_a_few_drains_each_post_once(
    make_stack: Callable[..., Stack],
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    # The sweeper stays out of it (it asks again for what waited 30 s), so every
    # drain counted below was asked for by publishing or by a drain's follow-up.
    stack = make_stack({"hook": {"type": "webhook", "base_url": url}},
                       PUBLISHER_REQUEUE_AFTER="30")  # fmt: skip
    # Published while no worker runs: one drain request covers the whole backlog.
    backlog = [stack.runtime.publish(hook_article(n)).article_id for n in range(60)]
    queue = stack.settings.redis_prefix + "celery:deliver.webhook"
    client = redis.Redis.from_url(stack.runtime.location.client_url)
    tasks = [json.loads(m)["headers"]["task"] for m in client.lrange(queue, 0, -1)]
    client.close()
    assert tasks == ["publisher.drain"]
    stack.start_worker(concurrency=2)
    stack.wait_settled(backlog)
    time.sleep(0.5)  # the last task's "succeeded" line follows its commit
    counts = tasks_run(stack)
    # The queued drain, and at most its follow-up or two.
    assert 1 <= counts["publisher.drain"] <= 3, counts
    # Published while it runs: whatever the timing, each goes out once.
    live = [stack.runtime.publish(hook_article(n)).article_id for n in range(60, 100)]
    stack.wait_settled(live)

    rows = stack.runtime.store.deliveries(article_ids=backlog + live, limit=1000)
    assert {(d.state, d.attempts) for d in rows} == {(State.DELIVERED, 1)}
    keys = [key for _, key in rec.requests]
    assert len(keys) == len(set(keys)) == 100  # one request per post, none repeated
    assert "publisher.deliver" not in tasks_run(stack)  # no task of its own per delivery


def test_a_drain_killed_mid_batch_loses_nothing_and_posts_nothing_twice(
    make_stack: Callable[..., Stack],
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.delay = 1.5  # every post stalls: the kill lands while one is in flight
    stack = make_stack(
        {"hook": {"type": "webhook", "base_url": url, "timeout": 10}},
        PUBLISHER_LEASE_SECONDS="8",
    )
    worker = stack.start_worker(concurrency=1)
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in range(4)]
    stack.wait_until(lambda: rec.in_flight > 0, timeout=30)
    claimed = [d for d in stack.runtime.store.deliveries(article_ids=ids) if d.state == "sending"]
    assert len(claimed) == 4  # one batch took them all
    stack.kill(worker)
    rec.delay = 0.0
    stack.start_worker(concurrency=1)
    stack.wait_settled(ids, timeout=60)

    rows = stack.runtime.store.deliveries(article_ids=ids)
    assert {d.state for d in rows} == {State.DELIVERED}
    assert len(rec.posts) == 4  # the post in flight was repeated with its key, not duplicated
    taken_over = [d for d in rows if d.attempts == 2]
    assert taken_over, [(d.id, d.attempts) for d in rows]  # the killed batch's rows went again


@pytest.fixture
def idle_stack(
    make_stack: Callable[..., Stack],
    receiver: tuple[Receiver, str],
) -> Iterator[tuple[Stack, Receiver]]:
    rec, url = receiver
    yield make_stack({"hook": {"type": "webhook", "base_url": url}}), rec


def test_a_drain_out_of_time_gives_its_claims_back_unspent(
    idle_stack: tuple[Stack, Receiver],
) -> None:
    stack, rec = idle_stack
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in range(3)]

    done = drain(stack.runtime.engine, "webhook", budget=0.0)

    assert done.more and done.tried == 0 and rec.requests == []
    rows = stack.runtime.store.deliveries(article_ids=ids)
    assert {(d.state, d.attempts) for d in rows} == {(State.PENDING, 0)}
    done = drain(stack.runtime.engine, "webhook")  # the follow-up sends them
    assert (done.tried, done.more) == (3, False)
    assert {d.state for d in stack.runtime.store.deliveries(article_ids=ids)} == {"delivered"}


def test_a_failed_post_in_a_batch_is_retried_alone(idle_stack: tuple[Stack, Receiver]) -> None:
    stack, rec = idle_stack
    rec.fail_next(503)
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in range(5)]

    done = drain(stack.runtime.engine, "webhook")

    assert (done.tried, done.more) == (5, False)
    rows = {d.article_id: d for d in stack.runtime.store.deliveries(article_ids=ids)}
    assert rows["hook-0"].state == State.RETRYING and rows["hook-0"].attempts == 1
    assert {rows[i].state for i in ids[1:]} == {State.DELIVERED}
    queue = stack.settings.redis_prefix + "celery:deliver.webhook"
    client = redis.Redis.from_url(stack.runtime.location.client_url)
    tasks = [json.loads(m)["headers"]["task"] for m in client.lrange(queue, 0, -1)]
    client.close()
    # The publishes' one drain request, and the retry: a countdown task for it alone.
    assert sorted(tasks) == ["publisher.deliver", "publisher.drain"]


@pytest.fixture(scope="module")
def mastodon() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def test_a_removal_in_the_same_batch_as_its_post_does_not_wait_for_it(
    make_stack: Callable[..., Stack],
    mastodon: MockServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retraction that reaches a drain in one batch with the post it removes:
    the post's outcome is recorded first, so the removal finds it delivered
    and takes it down at once, on its first attempt."""
    stack = make_stack(
        {"masto": {"type": "mastodon", "base_url": mastodon.base_url,
                   "access_token_env": TOKEN_ENV, "upload_cover": False}},
    )  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, MASTODON_TOKEN)  # this process sends: its own environment
    runtime = stack.runtime
    runtime.publish(hook_article(1))
    (post,) = runtime.store.deliveries(article_ids=["hook-1"])
    claim = runtime.store.claim(post.id, 60)  # in flight when the editor retracts
    assert claim is not None
    runtime.retract("hook-1", actor="desk")
    with runtime.store.outcomes() as writes:  # the worker gave it back unsent
        assert writes.release([claim]) == 1

    done = drain(runtime.engine, "mastodon", budget=60)  # this test is about order, not time

    rows = {d.kind: d for d in runtime.store.deliveries(article_ids=["hook-1"])}
    assert done.tried == 2
    assert rows[Kind.PUBLISH].state == State.DELIVERED
    assert (rows[Kind.RETRACT].state, rows[Kind.RETRACT].attempts) == (State.DELIVERED, 1)
    reader = Mastodon(access_token=MASTODON_TOKEN, api_base_url=mastodon.base_url)
    with pytest.raises(MastodonNotFoundError):
        reader.status(rows[Kind.PUBLISH].remote_id)
