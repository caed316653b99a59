"""Per-channel copy and tracked links, end to end: a real worker and Redis deliver one
article with overrides, `utm` tables and alt text to the Weibo and WeChat sandboxes, a
Mastodon-API server and the feeds, and each platform receives exactly what was written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import feedparser
import pytest
import requests
from mastodon import Mastodon

from channels.weibo_length import weibo_length
from channels.weibo_status import MAX_LENGTH
from publisher.domain.article import parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox.platforms import SECRETS, Platforms
from tests.conftest import SAMPLES
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

URL = "https://news.example.org/2026/11/20/contest?ref=home"
UTM = {"source": "{channel}", "medium": "social", "campaign": "{id}-{date}"}
# 129 字 of hand-written copy: with a space (half a 字) and the link (10 字, however long
# its utm parameters make it under 140 bytes) the status is exactly Weibo's 140 字.
WEIBO_TEXT = (
    "记者现场直击：全国数字技能大赛决赛今日开幕，"
    + "来自各地的选手同台竞技。" * 8
    + "欢迎关注本报官方微博号"
)


@pytest.fixture
def platforms() -> Iterator[Platforms]:
    p = Platforms()
    yield p
    p.close()


def tracked(channel: str) -> dict[str, str]:
    return {"ref": "home", "utm_source": channel, "utm_medium": "social",
            "utm_campaign": "copy-1-2026-11-20"}  # fmt: skip


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_overrides_and_tracked_links_arrive_as_written(
    make_stack: Callable[..., Stack],  # noqa: F811
    platforms: Platforms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    matrix = platforms.matrix(utm=UTM)  # every remote channel tracks its links
    matrix["site"]["utm"] = UTM
    stack = make_stack(matrix, **SECRETS)
    article = parse_article(
        {
            "id": "copy-1", "url": URL, "title": "全国数字技能大赛决赛开幕",
            "body_html": '<p>决赛开幕。</p><p><img src="https://news.example.org/x.jpg"></p>',
            "cover_image": "skills-contest.jpg", "cover_alt": "选手在赛场调试机器人",
            "published_at": "2026-11-20T08:00:00+08:00",
            "overrides": {
                "weibo": {"text": WEIBO_TEXT},
                "wechat": {"title": "手写的公众号标题", "digest": "手写的摘要"},
                "fediverse": {"text": "Hand-written toot.", "spoiler_text": "contest results",
                              "visibility": "unlisted"},
                "site": {"summary": "A summary written for feed readers."},
            },
        },
        base_dir=SAMPLES,
    )  # fmt: skip
    stack.start_worker()
    stack.runtime.publish(article)
    stack.wait_settled(["copy-1"], timeout=90)
    deliveries = stack.runtime.store.deliveries(article_ids=["copy-1"])
    assert {(d.channel, d.state) for d in deliveries} == {
        (c, State.DELIVERED) for c in ("site", "app", "weibo", "wechat", "fediverse")
    }, [(d.channel, d.state, d.last_error) for d in deliveries]

    # Weibo: the editor's words, then the tracked link; 137 字 by the platform's count.
    state = platforms.weibo.app.state.weibo
    (status,) = state.statuses.values()
    text, link = status.submitted.rsplit(" ", 1)
    assert text == WEIBO_TEXT and query(link) == tracked("weibo")
    assert weibo_length(status.submitted) == MAX_LENGTH

    # WeChat: the hand-written title and digest; 阅读原文 is the tracked link.
    (draft,) = stack_received(platforms)
    assert (draft["title"], draft["digest"]) == ("手写的公众号标题", "手写的摘要")
    assert query(draft["content_source_url"]) == tracked("wechat")

    # Mastodon: text, content warning, visibility, and the cover's description.
    reader = Mastodon(access_token="alice_token", api_base_url=platforms.mastodon.base_url)
    (toot,) = reader.account_statuses(reader.me()["id"])
    assert "Hand-written toot." in toot["content"]
    assert (toot["spoiler_text"], toot["visibility"]) == ("contest results", "unlisted")
    assert [m["description"] for m in toot["media_attachments"]] == ["选手在赛场调试机器人"]
    assert "utm_source=fediverse" in toot["content"]

    # Feeds: the summary override and a tracked link on `site`, the guid untouched;
    # `app` has no utm and no override, so it carries the article as it is.
    rss = feedparser.parse((stack.settings.data_dir / "feeds" / "rss.xml").read_bytes())
    (entry,) = rss.entries
    assert entry.summary == "A summary written for feed readers."
    assert query(entry.link) == tracked("site")
    assert entry.id.startswith("urn:uuid:") and "utm" not in entry.id
    (item,) = json.loads((stack.settings.data_dir / "feeds" / "app.json").read_text())["items"]
    assert item["url"] == URL and item["summary"] == "决赛开幕。"


def stack_received(platforms: Platforms) -> list[dict[str, Any]]:
    received = requests.get(f"{platforms.wechat.url}/_control/received", timeout=5).json()
    return [article for batch in received for article in batch.get("articles", [batch])]
