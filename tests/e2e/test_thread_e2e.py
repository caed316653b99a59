"""A Mastodon thread through real workers and a real Mastodon-API server (mastodon-mock):
a worker SIGKILLed mid-thread, the delivery taken over by another, no part posted twice;
then a correction edits the parts and adds replies, and the retraction deletes every part."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mastodon import Mastodon
from mastodon_mock.testing.server import MockServer

from channels.base import remote_posts
from channels.mastodon_length import mastodon_length
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from sandbox.server import BackgroundServer
from tests.channels.test_mastodon_thread import ENGLISH, long_article
from tests.conftest import postgres_schema_url
from tests.support.held_answers import HeldAnswers
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

TOKEN = "alice_token"
STATUSES = "/api/v1/statuses"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as mock:
        yield mock


@pytest.fixture
def proxied(server: MockServer) -> Iterator[Callable[..., HeldAnswers]]:
    """The way to the server, through a proxy that holds or refuses a status posted."""
    proxies: list[tuple[HeldAnswers, BackgroundServer]] = []

    def make(**behaviour: int) -> HeldAnswers:
        proxy = HeldAnswers(server.base_url, STATUSES, **behaviour)
        running = BackgroundServer(proxy.app()).start()
        proxy.url = running.url
        proxies.append((proxy, running))
        return proxy

    yield make
    for proxy, running in proxies:
        proxy.release()
        running.stop()


def thread_channel(url: str) -> dict[str, dict[str, Any]]:
    return {
        "fediverse": {
            "type": "mastodon", "base_url": url, "thread": True, "max_attempts": 3,
            "access_token_env": "MASTODON_ACCESS_TOKEN", "upload_cover": False, "timeout": 10.0,
        },
    }  # fmt: skip


def version_delivered(stack: Stack, article_id: str, version: int) -> bool:
    row = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    return row.article_version == version and row.state == State.DELIVERED


def my_statuses(reader: Mastodon) -> list[dict[str, Any]]:
    return list(reader.account_statuses(reader.me()["id"], limit=40))


def test_worker_killed_mid_thread_leaves_no_repeated_part(
    make_stack: Callable[..., Stack],  # noqa: F811
    server: MockServer,
    proxied: Callable[..., HeldAnswers],
) -> None:
    reader = Mastodon(access_token=TOKEN, api_base_url=server.base_url)
    held = proxied(hold_from=3)
    stack = make_stack(thread_channel(held.url), MASTODON_ACCESS_TOKEN=TOKEN)
    first = stack.start_worker()
    story = long_article(7)
    assert len(story.text) >= 1400
    article_id = stack.runtime.publish(story).article_id
    # Part 3 reaches the server, but its answer is held: the worker never learns its id.
    assert held.held.wait(60), stack.logs()
    stack.kill(first)
    held.release()
    at_kill = len(my_statuses(reader))

    stack.start_worker()
    stack.wait_settled([article_id], timeout=90)

    delivery = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    assert delivery.state == State.DELIVERED, delivery.last_error
    parts = delivery.payload["thread"]
    assert at_kill == 3 and len(parts) == 4  # part 3 was on the server, not in the checkpoint
    ids = remote_posts(delivery.checkpoint, delivery.remote_id)
    assert ids[0] == delivery.remote_id and len(set(ids)) == len(parts)
    # On the server: exactly the N parts, each once, each a reply to the one before.
    statuses = {str(s["id"]): s for s in my_statuses(reader)}
    assert sorted(statuses) == sorted(ids)
    for index, status_id in enumerate(ids):
        assert reader.status_source(status_id)["text"] == parts[index]
        assert mastodon_length(parts[index]) <= 500
        parent = statuses[status_id]["in_reply_to_id"]
        assert (str(parent) if parent else None) == (ids[index - 1] if index else None)
    attempts = [a.outcome for a in stack.runtime.store.attempts(delivery.id)]
    assert attempts.count("delivered") == 1

    # A correction with more copy: the four parts are edited and replies are added.
    longer = long_article(7, paragraphs=[" ".join(ENGLISH)] * 2)
    stack.runtime.publish(longer)
    stack.wait_until(lambda: version_delivered(stack, article_id, 2), timeout=60)
    corrected = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    new_parts = corrected.payload["thread"]
    ids = remote_posts(corrected.checkpoint, corrected.remote_id)
    assert len(new_parts) == len(ids) > 4 and corrected.remote_id == delivery.remote_id
    assert [reader.status_source(i)["text"] for i in ids] == new_parts
    assert sorted(str(s["id"]) for s in my_statuses(reader)) == sorted(ids)

    # A retraction deletes every part, each once.
    stack.runtime.retract(article_id)
    stack.wait_settled([article_id], timeout=60)
    removal = stack.runtime.store.siblings(article_id, "fediverse")[Kind.RETRACT]
    assert removal.state == State.DELIVERED, removal.last_error
    assert sorted(str(removal.remote_id).split(",")) == sorted(ids)
    assert my_statuses(reader) == []


def test_a_half_finished_thread_is_retracted_and_a_new_version_posts_it_again(
    make_stack: Callable[..., Stack],  # noqa: F811
    server: MockServer,
    proxied: Callable[..., HeldAnswers],
) -> None:
    reader = Mastodon(access_token=TOKEN, api_base_url=server.base_url)
    refusing = proxied(refuse_from=3)  # part 3 is refused: the delivery fails for good
    stack = make_stack(thread_channel(refusing.url), MASTODON_ACCESS_TOKEN=TOKEN)
    stack.start_worker()
    article_id = stack.runtime.publish(long_article(8)).article_id
    stack.wait_settled([article_id], timeout=60)
    failed = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    assert failed.state == State.FAILED and "422" in str(failed.last_error)
    half = remote_posts(failed.checkpoint)
    assert len(half) == 2 and len(my_statuses(reader)) == 2

    # The retraction removes the two parts that went out.
    stack.runtime.retract(article_id)
    stack.wait_settled([article_id], timeout=60)
    removal = stack.runtime.store.siblings(article_id, "fediverse")[Kind.RETRACT]
    assert removal.state == State.DELIVERED, removal.last_error
    assert my_statuses(reader) == []

    # A new version (the platform takes it now) posts every part again, chained.
    refusing.refuse_from = None
    stack.runtime.publish(long_article(8, paragraphs=[" ".join(ENGLISH[:9])]))
    stack.wait_until(lambda: version_delivered(stack, article_id, 2), timeout=60)
    again = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    ids = remote_posts(again.checkpoint, again.remote_id)
    assert not set(ids) & set(half) and again.remote_id == ids[0]
    assert sorted(str(s["id"]) for s in my_statuses(reader)) == sorted(ids)
    assert [reader.status_source(i)["text"] for i in ids] == again.payload["thread"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of its own on the machine's PostgreSQL, dropped after the stack stopped."""
    yield from postgres_schema_url()


def test_a_long_thread_is_delivered_and_retracted_on_postgresql(
    postgres_url: str,  # first: set up before the stack, so torn down after it
    make_stack: Callable[..., Stack],  # noqa: F811
    server: MockServer,
) -> None:
    """Twenty-odd parts: the removal's receipt must still fit the store's column."""
    reader = Mastodon(access_token=TOKEN, api_base_url=server.base_url)
    channels = thread_channel(server.base_url)
    stack = make_stack(channels, MASTODON_ACCESS_TOKEN=TOKEN, DATABASE_URL=postgres_url)
    stack.start_worker()
    article_id = stack.runtime.publish(long_article(9, paragraphs=ENGLISH * 6)).article_id
    stack.wait_settled([article_id], timeout=90)
    delivery = stack.runtime.store.siblings(article_id, "fediverse")[Kind.PUBLISH]
    assert delivery.state == State.DELIVERED, delivery.last_error
    ids = remote_posts(delivery.checkpoint, delivery.remote_id)
    assert len(ids) == len(delivery.payload["thread"]) >= 20
    assert len(my_statuses(reader)) == len(ids)

    stack.runtime.retract(article_id)
    stack.wait_settled([article_id], timeout=90)
    removal = stack.runtime.store.siblings(article_id, "fediverse")[Kind.RETRACT]
    assert removal.state == State.DELIVERED, removal.last_error
    assert my_statuses(reader) == []
