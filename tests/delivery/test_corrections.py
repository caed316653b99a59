"""Corrections and retractions on every channel, end to end through a real
worker: feeds, the Weibo and WeChat sandboxes and a real Mastodon-API server,
with what followers see checked on each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import feedparser
import pytest
import requests
from mastodon import Mastodon

from publisher.domain.article import load_article_file
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from sandbox.platforms import SECRETS, Platforms
from sandbox.server import BackgroundServer
from tests.conftest import SAMPLES
from tests.e2e.test_remote_e2e import platforms  # noqa: F401 - fixture
from tests.support.receiver import Receiver
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

ARTICLE = "2024-04-22-digital-talent"
CORRECTED = "Corrected: More High-level Digital Talents"


def states(stack: Stack) -> dict[tuple[str, str], str]:
    return {(d.channel, d.kind): d.state for d in stack.runtime.store.deliveries()}


def corrected_article() -> Any:
    article = load_article_file(SAMPLES / "digital-talent.json")
    return article.model_copy(update={"title": CORRECTED})


@pytest.fixture
def stack(
    make_stack: Callable[..., Stack],  # noqa: F811
    platforms: Platforms,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Stack:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    built = make_stack(platforms.matrix(), **SECRETS)
    built.start_worker()
    return built


def test_correction_then_retraction_on_every_channel(stack: Stack, platforms: Platforms) -> None:  # noqa: F811
    runtime, store = stack.runtime, stack.runtime.store
    runtime.publish(load_article_file(SAMPLES / "digital-talent.json"))
    stack.wait_settled([ARTICLE], timeout=90)
    first = {d.channel: d for d in store.deliveries(article_ids=[ARTICLE])}
    assert {d.state for d in first.values()} == {State.DELIVERED}
    guid = feedparser.parse((stack.settings.feeds_dir / "atom.xml").read_bytes()).entries[0].id

    # An unchanged re-publish does nothing.
    assert not runtime.publish(load_article_file(SAMPLES / "digital-talent.json")).changed

    # -- the correction -------------------------------------------------------
    result = runtime.publish(corrected_article())
    assert result.changed and result.version == 2
    stack.wait_settled([ARTICLE], timeout=90)
    stack.wait_until(lambda: not any(map(store.feed_changed_since_build, ("site", "app"))))
    assert states(stack) == {
        ("site", Kind.PUBLISH): State.DELIVERED,
        ("app", Kind.PUBLISH): State.DELIVERED,
        ("fediverse", Kind.PUBLISH): State.DELIVERED,  # edited in place
        ("weibo", Kind.PUBLISH): State.DELIVERED,
        ("weibo", Kind.CORRECTION): State.DELIVERED,  # a follow-up post
        ("wechat", Kind.PUBLISH): State.DELIVERED,
        ("wechat", Kind.CORRECTION): State.DELIVERED,  # the corrected article republished
    }
    # Feeds: the same item, updated in place.
    atom = feedparser.parse((stack.settings.feeds_dir / "atom.xml").read_bytes())
    assert [(e.id, e.title) for e in atom.entries] == [(guid, CORRECTED)]
    app = json.loads((stack.settings.feeds_dir / "app.json").read_text())
    assert [i["title"] for i in app["items"]] == [CORRECTED]
    # Mastodon: the one status now says the corrected title.
    reader = Mastodon(access_token="alice_token", api_base_url=platforms.mastodon.base_url)
    statuses = reader.account_statuses(reader.me()["id"])
    assert len(statuses) == 1 and CORRECTED in statuses[0]["content"]
    # Weibo: the original and a correction that links it.
    weibo_rows = store.siblings(ARTICLE, "weibo")
    timeline = requests.get(f"{platforms.weibo.url}/", timeout=5).text
    assert "更正：" + CORRECTED in timeline
    follow_up = requests.get(str(weibo_rows[Kind.CORRECTION].remote_url), timeout=5).text
    assert str(weibo_rows[Kind.PUBLISH].remote_id) in follow_up  # links the original status
    # WeChat: the corrected article replaced the original; never two copies.
    articles = requests.get(f"{platforms.wechat.url}/", timeout=5).text
    assert CORRECTED[:20] in articles and "Contribute" not in articles  # titles fit 32 字
    assert platforms.stats(platforms.wechat)["duplicate_posts"] == 0
    assert platforms.stats(platforms.weibo)["duplicate_posts"] == 0

    # -- the retraction -------------------------------------------------------
    removals = runtime.retract(ARTICLE, actor="desk")
    assert len(removals) == 5
    stack.wait_settled([ARTICLE], timeout=90)
    stack.wait_until(lambda: not any(map(store.feed_changed_since_build, ("site", "app"))))
    retracts = {d.channel: d for d in store.deliveries(article_ids=[ARTICLE])
                if d.kind == Kind.RETRACT}  # fmt: skip
    assert {c: d.state for c, d in retracts.items()} == {
        c: State.DELIVERED for c in ("site", "app", "fediverse", "weibo", "wechat")
    }, [(d.channel, d.last_error) for d in retracts.values()]
    assert feedparser.parse((stack.settings.feeds_dir / "rss.xml").read_bytes()).entries == []
    assert json.loads((stack.settings.feeds_dir / "app.json").read_text())["items"] == []
    assert reader.account_statuses(reader.me()["id"]) == []
    timeline = requests.get(f"{platforms.weibo.url}/", timeout=5).text
    assert CORRECTED not in timeline and "Contribute" not in timeline
    assert CORRECTED[:20] not in requests.get(f"{platforms.wechat.url}/", timeout=5).text
    log = store.attempts(retracts["weibo"].id)
    assert [(a.outcome, a.actor) for a in log] == [("retract", "desk"), ("delivered", None)]


def test_retraction_cancels_what_has_not_gone_out_and_reports_what_cannot_be_removed(
    make_stack: Callable[..., Stack],  # noqa: F811
) -> None:
    receiver = Receiver()
    with BackgroundServer(receiver.app()) as hook:
        stack = make_stack({
            "site": {"type": "rss"},
            "hook": {"type": "webhook", "base_url": f"{hook.url}/hook"},
        })  # fmt: skip
        sample = load_article_file(SAMPLES / "skills-contest.md")
        assert sample.published_at is not None
        later = sample.model_copy(update={"publish_at": sample.published_at.replace(year=2099)})
        stack.runtime.publish(later)
        stack.start_worker()
        stack.runtime.publish(load_article_file(SAMPLES / "digital-talent.json"))
        stack.wait_settled([ARTICLE])
        assert stack.runtime.retract(later.id) == []
        assert {d.state for d in stack.runtime.store.deliveries(article_ids=[later.id])} == {
            State.CANCELLED
        }
        stack.runtime.retract(ARTICLE)
        stack.wait_settled([ARTICLE])
        rows = {
            (d.channel, d.kind): d for d in stack.runtime.store.deliveries(article_ids=[ARTICLE])
        }
        hook_removal = rows[("hook", Kind.RETRACT)]
        assert hook_removal.state == State.FAILED
        assert hook_removal.last_error is not None
        assert hook_removal.last_error.startswith("webhook cannot remove a delivered post")
        assert rows[("site", Kind.RETRACT)].state == State.DELIVERED
        assert stack.runtime.retract(ARTICLE) == []  # again: nothing new
