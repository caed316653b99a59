"""A WeChat digest is one multi-article message: its payload as a table, its transport
against the real sandbox (covers, body images, one draft, resumption after timeouts,
reconciliation by the whole message), the syndication run that stores it, and the
whole path through a real worker and beat."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from channels.base import notes_of
from channels.wechat import WechatChannel
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import InputError, OutcomeUnknownError, PermanentError
from publisher.domain.states import State
from publisher.jobs.syndication import RunState, Syndicator, digest_id
from publisher.local.cluster import Stack
from publisher.worker.runtime import Runtime
from sandbox.server import BackgroundServer
from sandbox.wechat import DEFAULT_SECRET, create_app
from tests.channels.test_wechat import (  # noqa: F401 - fixtures
    Delivery,
    Harness,
    image_app,
    images,
    offline_channel,
    sandbox,
    wechat_env,
    wx,
)
from tests.conftest import SAMPLES
from tests.jobs.test_ingest import write_ingest_matrix
from tests.jobs.test_syndication import EVENING, make_runtime, publish_story, utc  # noqa: F401
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(120)


def story(n: int, base_dir: Path | None = None, **fields: Any) -> Article:
    return parse_article(
        {
            "id": f"wx-{n}",
            "url": f"https://news.example.org/wx/{n}.html",
            "title": f"第{n}条新闻",
            "author": f"记者{n}",
            "summary": f"摘要{n}。",
            "body_html": f"<p>正文{n}。</p>",
            **fields,
        },
        base_dir=base_dir,
    )


# ---- format_articles: articles → one message's payload --------------------------------------

LONG_TITLE = "全国职工数字应用技术技能大赛决赛今日在京开幕三百余名职工同台竞技争夺冠军"
COVERED = story(1, title=LONG_TITLE, cover_image="https://img.example/one.jpg")
IMAGED = story(2, body_html='<p>会场</p><p><img src="https://img.example/two.png" alt="图"></p>')
PLAIN = story(3)

# (id, articles, channel options, expected: a value, or a check on the value, per path)
PAYLOAD_CASES: list[tuple[str, list[Article], dict[str, Any], dict[str, Any]]] = [
    (
        "three-in-the-order-given",
        [COVERED, IMAGED, PLAIN],
        {"default_cover": "https://img.example/brand.jpg"},
        {
            "articles": lambda parts: len(parts) == 3,
            "articles.0.article.title": LONG_TITLE[:31] + "…",
            "articles.0.article.author": "记者1",
            "articles.0.article.content_source_url": "https://news.example.org/wx/1.html",
            "articles.1.article.content_source_url": "https://news.example.org/wx/2.html",
            "articles.2.article.content_source_url": "https://news.example.org/wx/3.html",
            "articles.0.cover_image": "https://img.example/one.jpg",  # its own cover
            "articles.1.cover_image": "https://img.example/brand.jpg",  # before a body image
            "articles.2.cover_image": "https://img.example/brand.jpg",  # the default cover
            "articles.0.inline_images": [],
            "articles.1.inline_images": ["https://img.example/two.png"],
            "articles.1.article.content": lambda c: '<img src="https://img.example/two.png"' in c,
        },
    ),
    (
        "newest-first-is-kept",
        [PLAIN, COVERED],
        {"default_cover": "https://img.example/brand.jpg"},
        {
            "articles.0.article.title": "第3条新闻",
            "articles.1.article.title": lambda t: t.startswith("全国职工"),
        },
    ),
    (
        "a-body-image-is-the-cover-without-a-default",
        [IMAGED, COVERED],
        {},
        {
            "articles.0.cover_image": "https://img.example/two.png",
            "articles.1.cover_image": "https://img.example/one.jpg",
        },
    ),
    (
        "one-article-is-still-a-message-without-digest",
        [PLAIN],
        {"author": "本报"},
        {
            "articles": lambda parts: len(parts) == 1,
            "articles.0.article.author": "记者3",
            "articles.0.cover_image": None,  # no cover anywhere: send refuses it
        },
    ),
    (
        "eight-is-the-limit",
        [story(n) for n in range(1, 9)],
        {},
        {"articles": lambda parts: [p["article"]["title"] for p in parts] == [
            f"第{n}条新闻" for n in range(1, 9)
        ]},
    ),
    (
        "comments-option-on-every-article",
        [COVERED, PLAIN],
        {"need_open_comment": True},
        {"articles.0.article.need_open_comment": 1, "articles.1.article.need_open_comment": 1},
    ),
]  # fmt: skip


def value_at(payload: Any, path: str) -> Any:
    for part in path.split("."):
        payload = payload[int(part)] if isinstance(payload, list) else payload[part]
    return payload


@pytest.mark.parametrize(
    ("articles", "options", "expected"),
    [c[1:] for c in PAYLOAD_CASES],
    ids=[c[0] for c in PAYLOAD_CASES],
)
def test_multi_article_payload(
    articles: list[Article], options: dict[str, Any], expected: dict[str, Any]
) -> None:
    channel = offline_channel(**options)
    payload = channel.format_articles(articles)
    for path, want in expected.items():
        got = value_at(payload, path)
        assert want(got) if callable(want) else got == want, (path, got)
    assert set(payload) == {"articles"}
    for article, part in zip(articles, payload["articles"], strict=True):
        assert "digest" not in part["article"]  # kept only on single-article drafts
        single = channel.format(article)
        del single["article"]["digest"]
        assert part == single  # otherwise exactly what the single-article formatter makes
    assert payload == offline_channel(**options).format_articles(articles)  # pure


@pytest.mark.parametrize("count", [0, 9])
def test_a_message_holds_one_to_eight_articles(count: int) -> None:
    with pytest.raises(InputError, match=f"1 to 8 articles, not {count}"):
        offline_channel().format_articles([story(n) for n in range(count)])


# ---- send: one draft, one publish, resumable ------------------------------------------------


def three_stories(server: BackgroundServer) -> list[Article]:
    """Its own cover; its own cover and a body image; the default cover, the same as the first."""
    return [
        story(1, cover_image=f"{server.url}/img/cover.jpg"),
        story(
            2,
            cover_image=f"{server.url}/img/second.jpg",
            body_html=f'<p>会场</p><p><img src="{server.url}/img/hall.png" alt="图"></p>',
        ),
        story(3),
    ]


def message_channel(harness: Harness, server: BackgroundServer, **options: Any) -> WechatChannel:
    return harness.channel(default_cover=f"{server.url}/img/cover.jpg", **options)


def test_a_message_of_three_is_one_draft_and_one_publish(
    wx: Harness,  # noqa: F811
    images: BackgroundServer,  # noqa: F811
) -> None:
    channel = message_channel(wx, images)
    delivery = Delivery(channel, channel.format_articles(three_stories(images)))
    receipt = delivery.until_delivered()

    stats = wx.stats()
    assert {k: stats[k] for k in (
        "drafts_created", "publish_submits", "published", "drafts", "duplicate_posts",
        "materials", "external_images_received",
    )} == {
        "drafts_created": 1, "publish_submits": 1, "published": 1, "drafts": 0,
        "duplicate_posts": 0, "materials": 2, "external_images_received": 0,
    }  # fmt: skip
    sent = wx.received()
    assert [a["title"] for a in sent] == ["第1条新闻", "第2条新闻", "第3条新闻"]
    assert all("digest" not in a for a in sent)
    covers = [a["thumb_media_id"] for a in sent]
    assert covers[0] == covers[2] != covers[1]  # the shared cover went up once
    assert delivery.checkpoint["cover_media_ids"] == {"0": covers[0], "1": covers[1],
                                                      "2": covers[2]}  # fmt: skip
    assert receipt.remote_id == delivery.checkpoint["article_id"]
    assert receipt.remote_url == f"{wx.base}/s/{receipt.remote_id}/1"  # the first article
    for index, n in enumerate((1, 2, 3), 1):
        page = requests.get(f"{wx.base}/s/{receipt.remote_id}/{index}", timeout=5)
        assert page.status_code == 200 and f"第{n}条新闻" in page.text
        assert f"https://news.example.org/wx/{n}.html" in page.text  # 阅读原文
        assert images.url not in page.text
    assert f"{wx.base}/mmbiz/" in requests.get(f"{wx.base}/s/{receipt.remote_id}/2", timeout=5).text

    channel.delete(receipt.remote_id)  # a retraction removes the whole message
    assert wx.stats()["published"] == 0
    assert requests.get(str(receipt.remote_url), timeout=5).status_code == 404


def test_timeout_after_the_draft_is_stored_does_not_make_a_second_draft(
    wx: Harness,  # noqa: F811
    images: BackgroundServer,  # noqa: F811
) -> None:
    wx.fault("/cgi-bin/draft/add", mode="timeout_after_store", seconds=3.0)
    payload = message_channel(wx, images).format_articles(three_stories(images))
    delivery = Delivery(message_channel(wx, images, timeout=1.0), payload)
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    assert wx.stats()["drafts"] == 1  # stored, though the client never heard
    assert 0 < delivery.checkpoint["draft_requested"] <= time.time()  # when it was sent

    delivery.until_delivered()
    stats = wx.stats()
    assert (stats["drafts_created"], stats["published"], stats["duplicate_posts"]) == (1, 1, 0)
    assert stats["materials"] == 2  # covers were not uploaded again


def test_timeout_after_the_publish_is_submitted_does_not_submit_again(
    wx: Harness,  # noqa: F811
    images: BackgroundServer,  # noqa: F811
) -> None:
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    payload = message_channel(wx, images).format_articles(three_stories(images))
    delivery = Delivery(message_channel(wx, images, timeout=0.8), payload)
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    receipt = delivery.until_delivered()
    stats = wx.stats()
    assert (stats["publish_submits"], stats["published"], stats["duplicate_posts"]) == (1, 1, 0)
    assert receipt.remote_url == f"{wx.base}/s/{receipt.remote_id}/1"


def test_an_article_is_never_reconciled_to_a_message_that_starts_with_it(
    wx: Harness,  # noqa: F811
    images: BackgroundServer,  # noqa: F811
) -> None:
    """The article's own post and a newer digest led by it share the first (URL, title)."""
    first, second, _ = three_stories(images)
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    single = Delivery(message_channel(wx, images, timeout=0.8), wx.channel().format(first))
    with pytest.raises(OutcomeUnknownError):
        single.attempt()
    time.sleep(0.3)
    assert wx.stats()["published"] == 1  # the article's own post is out, unbeknown to it
    time.sleep(1.1)  # listings are newest first, by the second: the digest lists before it

    channel = message_channel(wx, images)
    digest = Delivery(channel, channel.format_articles([first, second])).until_delivered()
    own = single.until_delivered()  # reconciles through freepublish/batchget

    assert own.remote_id != digest.remote_id
    assert own.remote_url == f"{wx.base}/s/{own.remote_id}/1"
    assert requests.get(f"{wx.base}/s/{own.remote_id}/2", timeout=5).status_code == 404
    stats = wx.stats()
    assert (stats["publish_submits"], stats["published"]) == (2, 2)
    # The sandbox counts any second live copy of an original URL; here it is on purpose.
    assert stats["duplicate_posts"] == 1


def test_an_article_without_any_cover_is_named(wx: Harness) -> None:  # noqa: F811
    channel = wx.channel(generated_cover=False)
    delivery = Delivery(channel, channel.format_articles([story(1), story(2)]))
    with pytest.raises(PermanentError, match=r"none for article 1 \(第1条新闻\), 2 \(第2条新闻\)"):
        delivery.attempt()
    assert wx.stats()["materials"] == 0  # refused before anything was uploaded


def test_articles_without_any_cover_get_a_card_each(wx: Harness) -> None:  # noqa: F811
    channel = wx.channel()
    delivery = Delivery(channel, channel.format_articles([story(1), story(2)]))
    delivery.until_delivered()
    covers = delivery.checkpoint["cover_media_ids"]
    assert covers["0"] != covers["1"]  # one card per title
    assert notes_of(delivery.checkpoint) == [
        "cover: generated a card with the title for '第1条新闻'",
        "cover: generated a card with the title for '第2条新闻'",
    ]


# ---- the syndication run: one stored delivery carrying the message ----------------------------


def test_a_wechat_digest_run_stores_one_delivery_with_the_message(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    database_url: str,
) -> None:
    wechat_job = {**EVENING, "channel": "wechat", "max_items": 8, "title": "晚报 {date}"}
    runtime = make_runtime({"evening": wechat_job, "hooked": EVENING}, database_url)
    slot = utc(2026, 3, 9, 0)  # 20:00 EDT on March 8
    publish_story(runtime, 1, slot - timedelta(hours=30))  # outside the window
    for n, hours in ((2, 20), (3, 10), (4, 5)):
        publish_story(
            runtime, n, slot - timedelta(hours=hours), cover_image=f"https://img.example/{n}.jpg"
        )

    outcomes = {o.job: o for o in Syndicator(runtime).run_due(slot + timedelta(seconds=20))}
    evening = outcomes["evening"]
    assert (evening.state, evening.items) == (RunState.DONE, ["story-4", "story-3", "story-2"])
    assert evening.article_id == "digest-evening-2026-03-08-2000"
    row, digest, deliveries = runtime.store.article(evening.article_id)
    assert digest.title == "晚报 2026-03-08" and row.actor == "syndication:evening"
    (delivery,) = deliveries
    assert (delivery.channel, delivery.state) == ("wechat", State.PENDING)
    parts = (delivery.payload or {})["articles"]
    assert [p["article"]["title"] for p in parts] == ["Story 4", "Story 3", "Story 2"]
    assert [p["article"]["content_source_url"] for p in parts] == [
        f"https://news.example.org/s/{n}" for n in (4, 3, 2)
    ]
    assert [p["cover_image"] for p in parts] == [f"https://img.example/{n}.jpg" for n in (4, 3, 2)]
    assert all("digest" not in p["article"] for p in parts)

    # Another channel type keeps the digest article listing the chosen ones.
    hooked_id = outcomes["hooked"].article_id
    assert hooked_id is not None
    (hooked,) = runtime.store.article(hooked_id)[2]
    assert "articles" not in (hooked.payload or {})
    assert "Story 4" in (hooked.payload or {})["body_html"]

    assert Syndicator(runtime).run_due(slot + timedelta(seconds=40)) == []  # once per slot
    assert len(runtime.store.deliveries(channel="wechat")) == 1


def test_a_taken_over_wechat_digest_stores_the_message_once(
    make_runtime: Callable[..., Runtime],  # noqa: F811
) -> None:
    runtime = make_runtime({"evening": {**EVENING, "channel": "wechat"}})
    job = runtime.settings.syndication["evening"]
    slot = utc(2026, 3, 9, 0)
    publish_story(runtime, 1, slot - timedelta(hours=1))
    syndicator = Syndicator(runtime)
    claimed = syndicator._claim(job, slot, slot)
    assert claimed is not None
    # The worker dies after storing the digest and before recording the run as done.
    chosen = syndicator._chosen(claimed[1])
    channel = runtime.channels["wechat"]
    assert isinstance(channel, WechatChannel)
    syndicator._publish_message(job, syndicator._digest(job, slot, chosen), channel,
                                channel.format_articles(chosen))  # fmt: skip
    outcome = syndicator.run(
        job, slot, now=slot + timedelta(seconds=runtime.settings.lease_seconds + 1)
    )
    assert outcome is not None and outcome.state == RunState.DONE
    (delivery,) = runtime.store.deliveries(channel="wechat")
    assert delivery.article_version == 1
    assert [p["article"]["title"] for p in (delivery.payload or {})["articles"]] == ["Story 1"]


# ---- end to end: beat → run → worker → sandbox --------------------------------------------------

SECRETS = {"WECHAT_APPID": "wx-sandbox", "WECHAT_SECRET": DEFAULT_SECRET}


@pytest.fixture
def platform() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(publish_delay=0.2)) as server:
        yield server


@pytest.fixture
def image_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(image_app()) as server:
        yield server


@pytest.mark.parametrize("fault", [None, "draft-timeout"])
def test_a_digest_reaches_wechat_as_one_message_through_worker_and_beat(
    make_stack: Callable[..., Stack],  # noqa: F811
    platform: BackgroundServer,
    image_server: BackgroundServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str | None,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    channels: dict[str, dict[str, Any]] = {
        "site": {"type": "rss"},
        "wechat": {
            "type": "wechat", "base_url": platform.url, "appid_env": "WECHAT_APPID",
            "secret_env": "WECHAT_SECRET", "publish_wait": 0.5, "publish_poll_interval": 0.3,
            "default_cover": str(SAMPLES / "skills-contest.jpg"), "timeout": 1.0,
            "backoff_base": 0.2, "backoff_cap": 2.0,
        },
    }  # fmt: skip
    # A schedule whose only time this year is the current minute: the beat runs it at once.
    zone = "Asia/Shanghai"
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo(zone))
    job = {
        "schedule": f"{local.minute} {local.hour} {local.day} {local.month} *",
        "timezone": zone, "channel": "wechat", "mode": "digest", "max_items": 8,
        "window": "24h", "title": "晚报 {date}", "url": "https://news.example.org/digest/{date}",
    }  # fmt: skip
    matrix = write_ingest_matrix(tmp_path / f"digest-{uuid.uuid4().hex[:6]}.toml",
                                 {"syndication": {"evening": job}}, channels)  # fmt: skip
    stack = make_stack(
        channels, PUBLISHER_CONFIG=str(matrix), PUBLISHER_FETCH_ALLOW="127.0.0.1", **SECRETS
    )
    evening = stack.settings.syndication["evening"]
    slot = evening.cron.previous(now)
    assert slot is not None

    stories = [
        story(1, cover_image="skills-contest.jpg", base_dir=SAMPLES,  # into the media store
              published_at=(slot - timedelta(hours=3)).isoformat()),
        story(2, body_html=f'<p>会场</p><p><img src="{image_server.url}/img/hall.png" alt="图">'
              "</p>", published_at=(slot - timedelta(hours=2)).isoformat()),
        story(3, published_at=(slot - timedelta(hours=1)).isoformat()),  # the default cover
        story(4, published_at=(slot - timedelta(hours=30)).isoformat()),  # outside the window
    ]  # fmt: skip
    ids = [stack.runtime.publish(s, only=["site"]).article_id for s in stories]
    if fault:
        requests.post(f"{platform.url}/_control/faults", timeout=5, json={
            "path": "/cgi-bin/draft/add", "mode": "timeout_after_store", "seconds": 2.5,
        }).raise_for_status()  # fmt: skip
    stack.start_worker()
    digest = digest_id(evening, slot)
    stack.wait_until(lambda: stack.settled(ids) and stack.settled([digest]), timeout=90)

    (run,) = Syndicator(stack.runtime).runs("evening")
    assert (run.state, run.items, run.article_id) == (
        RunState.DONE,
        ["wx-3", "wx-2", "wx-1"],
        digest,
    )
    assert {d.state for d in stack.runtime.store.deliveries(article_ids=ids)} == {State.DELIVERED}
    (delivery,) = stack.runtime.store.deliveries(article_ids=[digest])
    assert (delivery.channel, delivery.state) == ("wechat", State.DELIVERED), delivery.last_error
    assert delivery.remote_url == f"{platform.url}/s/{delivery.remote_id}/1"
    if fault:  # the first attempt timed out after the draft was stored; the retry found it
        assert delivery.attempts >= 2
        assert stack.runtime.store.attempts(delivery.id)[0].outcome == "retry"

    stats = requests.get(f"{platform.url}/_control/stats", timeout=5).json()
    assert {k: stats[k] for k in ("published", "drafts", "drafts_created", "publish_submits",
                                  "duplicate_posts")} == {
        "published": 1, "drafts": 0, "drafts_created": 1, "publish_submits": 1,
        "duplicate_posts": 0,
    }  # fmt: skip
    sent = requests.get(f"{platform.url}/_control/received", timeout=5).json()
    assert [a["title"] for a in sent] == ["第3条新闻", "第2条新闻", "第1条新闻"]
    assert all("digest" not in a for a in sent)

    # What followers see: one message of three articles, newest first.
    home = requests.get(f"{platform.url}/", timeout=5).text
    positions = [home.index(f"第{n}条新闻") for n in (3, 2, 1)]
    assert positions == sorted(positions) and "第4条新闻" not in home
    for index, n in enumerate((3, 2, 1), 1):
        page = requests.get(f"{platform.url}/s/{delivery.remote_id}/{index}", timeout=5)
        assert page.status_code == 200 and f"第{n}条新闻" in page.text
        assert f"https://news.example.org/wx/{n}.html" in page.text
        assert f'class="cover" src="{platform.url}/mmbiz/' in page.text
    body = requests.get(f"{platform.url}/s/{delivery.remote_id}/2", timeout=5).text
    assert f"{platform.url}/mmbiz/" in body.split("class='content'")[1]
    assert image_server.url not in body
    for secret in SECRETS.values():
        assert secret not in stack.logs()
