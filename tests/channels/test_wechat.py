"""The WeChat channel: its formatter as a table, its transport against the real sandbox.

Everything runs for real on loopback: the sandbox (`sandbox/wechat.py`), an
image server for body images, and the machine's Redis for the token cache.
`Delivery` replays what the engine does between attempts (persist the
checkpoint, remember an unknown outcome, refresh auth once and go again)
so the tests see the same resumption the product relies on.
"""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import requests
from fastapi import FastAPI, Response
from PIL import Image as PILImage

from channels.base import ChannelContext, Receipt, SendAttempt, notes_of
from channels.wechat import WechatChannel, clientmsgid, utf16_length
from publisher.config.settings import Settings
from publisher.domain.article import Article, load_article_file, parse_article
from publisher.domain.errors import (
    AuthExpiredError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    RetryableError,
)
from sandbox.server import BackgroundServer, free_port
from sandbox.wechat import DEFAULT_SECRET, create_app
from tests.channels import contract
from tests.channels.contract import ChannelFactory
from tests.conftest import SAMPLES

pytestmark = pytest.mark.timeout(60)

JPEG = (SAMPLES / "skills-contest.jpg").read_bytes()
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{100,}")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 512
HOSTILE = (
    '<p class="lead" style="color:red" onclick="steal()">要闻 <a href="https://evil.example/">'
    "点此</a> <b>加粗</b> <i>斜体</i></p>"
    '<script>alert("x")</script><style>p{}</style><iframe src="https://evil.example/"></iframe>'
    '<img src="x" onerror="steal()" alt="坏图">'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="内嵌">'
    '<img src="/etc/passwd" alt="本地文件">'
    '<img src="javascript:alert(1)" alt="脚本图">'
    '<form action="https://evil.example/"><input name="q"></form>'
    '<table><tr><td colspan="2" onmouseover="x()">表格</td></tr></table>'
)


# ---- harness --------------------------------------------------------------------------------


def image_app() -> FastAPI:
    """Where body images live before the channel re-hosts them."""
    app = FastAPI()

    @app.get("/img/{name}")
    def image(name: str) -> Response:
        if name.endswith(".png") and not name.startswith("gone"):
            return Response(PNG, media_type="image/png")
        if name.endswith(".jpg"):
            return Response(JPEG, media_type="image/jpeg")
        return Response(status_code=404)

    return app


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(publish_delay=0.2, force_refresh_interval=0)) as server:
        yield server


@pytest.fixture(scope="module")
def images() -> Iterator[BackgroundServer]:
    with BackgroundServer(image_app()) as server:
        yield server


@pytest.fixture
def wechat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WX_TEST_APPID", "wx-sandbox")
    monkeypatch.setenv("WX_TEST_SECRET", DEFAULT_SECRET)


@dataclass
class Harness:
    """Builds channels on a fresh token namespace and reads the sandbox's control API."""

    base: str
    build: ChannelFactory

    def channel(self, **options: Any) -> WechatChannel:
        table = {
            "base_url": self.base,
            "appid_env": "WX_TEST_APPID",
            "secret_env": "WX_TEST_SECRET",
            "timeout": 2.0,
            "publish_wait": 3.0,
            "publish_poll_interval": 0.1,
            **options,
        }
        channel = self.build("wechat", name="wx", **table)
        assert isinstance(channel, WechatChannel)
        return channel

    def stats(self) -> dict[str, int]:
        answer: dict[str, int] = requests.get(f"{self.base}/_control/stats", timeout=5).json()
        return answer

    def fault(self, path: str, mode: str = "error", **spec: Any) -> None:
        body = {"path": path, "mode": mode, **spec}
        requests.post(f"{self.base}/_control/faults", json=body, timeout=5).raise_for_status()

    def seed(self, count: int, age_seconds: float = 0) -> None:
        """Articles someone else published `age_seconds` ago: history a lookup walks."""
        body = {"count": count, "age_seconds": age_seconds}
        requests.post(f"{self.base}/_control/published", json=body, timeout=5).raise_for_status()

    def wait_for(self, key: str, value: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.stats()[key] != value:
            assert time.monotonic() < deadline, (key, self.stats()[key], value)
            time.sleep(0.05)

    def received(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = requests.get(
            f"{self.base}/_control/received", timeout=5
        ).json()
        return answer


def harness_for(
    base: str,
    make_settings: Callable[..., Settings],
    redis_client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Harness:
    """Every channel of one test shares a token namespace no other test sees."""
    requests.post(f"{base}/_control/reset", timeout=5).raise_for_status()
    namespace = f"{prefix}{uuid.uuid4().hex[:8]}:"
    return Harness(base, ChannelFactory(make_settings, redis_client, namespace, monkeypatch))


@pytest.fixture
def wx(
    sandbox: BackgroundServer,
    make_settings: Callable[..., Settings],
    redis_client: redis.Redis,
    redis_prefix: str,
    wechat_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Harness:
    return harness_for(sandbox.url, make_settings, redis_client, redis_prefix, monkeypatch)


@dataclass
class Delivery:
    """One delivery driven like the engine drives it, attempt after attempt."""

    channel: WechatChannel
    post: dict[str, Any]
    checkpoint: dict[str, Any] = field(default_factory=dict)
    outcome_unknown: bool = False
    failures: list[DeliveryError] = field(default_factory=list)
    attempts: int = 0

    def attempt(self) -> Receipt:
        self.attempts += 1
        attempt = SendAttempt(
            delivery_id=1,
            number=self.attempts,
            idempotency_key="idem-key-1",
            checkpoint=dict(self.checkpoint),
            outcome_unknown=self.outcome_unknown,
            save_checkpoint=self._save,
        )
        try:
            try:
                receipt = self.channel.send(self.post, attempt)
            except AuthExpiredError as error:
                self.failures.append(error)
                self.channel.refresh_auth()
                receipt = self.channel.send(self.post, attempt)
        except RetryableError as error:
            self.failures.append(error)
            self.outcome_unknown = isinstance(error, OutcomeUnknownError)
            raise
        self.outcome_unknown = False
        return receipt

    def notes(self) -> list[str]:
        return notes_of(self.checkpoint)

    def until_delivered(self, attempts: int = 8) -> Receipt:
        for _ in range(attempts):
            try:
                return self.attempt()
            except RetryableError as error:
                time.sleep(min(error.retry_after or 0.05, 0.3))
        raise AssertionError(f"not delivered after {attempts} attempts: {self.failures}")

    def _save(self, data: dict[str, Any]) -> None:
        self.checkpoint = dict(data)


def deliver(channel: WechatChannel, article: Article) -> tuple[Delivery, Receipt]:
    delivery = Delivery(channel, channel.format(article))
    return delivery, delivery.until_delivered()


def sample() -> Article:
    return load_article_file(SAMPLES / "skills-contest.md")


def article_with_images(images: BackgroundServer, *, body: str, **fields: Any) -> Article:
    data = {
        "id": f"a-{uuid.uuid4().hex[:6]}",
        "url": f"https://news.example.org/{uuid.uuid4().hex[:8]}.html",
        "title": "职工技能大赛",
        "body_html": body,
        "cover_image": f"{images.url}/img/cover.jpg",
        **fields,
    }
    return parse_article(data)


def raw_article(body_html: str, **fields: Any) -> Article:
    """An article that skipped the parser: format() must be safe on its own."""
    base = {
        "id": "raw",
        "url": "https://news.example.org/raw.html",
        "title": "标题",
        "summary": "摘要",
        "body_html": body_html,
    }
    return Article(**{**base, **fields})


# ---- format: article → payload --------------------------------------------------------------


def offline_channel(**options: Any) -> WechatChannel:
    """No Redis, no network: only `format` may be called."""
    channel = contract.offline_channel("wechat", name="wx", **options)
    assert isinstance(channel, WechatChannel)
    return channel


LONG_TITLE = "全国职工数字应用技术技能大赛决赛今日在京开幕三百余名职工同台竞技争夺冠军"
LONG_BODY = "".join(f"<p>{i:05d}" + "长" * 990 + "</p>" for i in range(30))
FIGURE = (
    '<figure><img src="https://img.example/a.png?x=1&amp;y=2" alt="A"><figcaption>说明'
    '</figcaption></figure><p><img src="media/abc.png"></p>'
    '<img src="https://img.example/a.png?x=1&amp;y=2" alt="again">'
)

# (id, article, channel options, expected payload fields: a value, or a check on the value)
FORMAT_CASES: list[tuple[str, Article, dict[str, Any], dict[str, Any]]] = [
    (
        "sample-article",
        sample(),
        {},
        {
            "article.title": "全国数字技能大赛决赛开幕 三百余名职工同台竞技",
            "article.author": "本报记者",
            "article.digest": "11月20日，全国职工数字应用技术技能大赛决赛开幕。"
            "来自各地的三百余名职工将在人工智能训练、数据分析和工业互联网运维三个赛项中同台竞技。",
            "article.content_source_url": "https://news.example.org/2026/11/20/skills-contest.html",
            "article.content": lambda c: "<strong>人工智能训练</strong>" in c and "😀" in c,
            "cover_image": lambda ref: ref.endswith("/skills-contest.jpg"),
            "inline_images": [],
        },
    ),
    (
        "long-title-cut-to-32",
        raw_article("<p>正文</p>", title=LONG_TITLE),
        {},
        {"article.title": "全国职工数字应用技术技能大赛决赛今日在京开幕三百余名职工同台竞…"},
    ),
    (
        "emoji-count-double",
        raw_article("<p>正文</p>", title="😀" * 20),
        {},
        {"article.title": "😀" * 15 + "…"},
    ),
    (
        "default-author-cut-to-16",
        raw_article("<p>正文</p>"),
        {"author": "工人日报新媒体中心数字技能大赛报道组特派记者团队"},
        {"article.author": "工人日报新媒体中心数字技能大赛…"},
    ),
    (
        "digest-cut-to-128-at-a-sentence",
        raw_article("<p>正文</p>", summary="摘要内容。" * 40),
        {},
        {"article.digest": "摘要内容。" * 25},
    ),
    (
        "hostile-html-reduced",
        raw_article(HOSTILE),
        {},
        {
            "article.content": "<p>要闻 点此 <strong>加粗</strong> <em>斜体</em></p>"
            "坏图内嵌本地文件脚本图"
            '<table><tbody><tr><td colspan="2">表格</td></tr></tbody></table>',
            "inline_images": [],
            "cover_image": None,
        },
    ),
    (
        "body-images-to-rehost",
        raw_article(FIGURE),
        {},
        {
            "inline_images": ["https://img.example/a.png?x=1&y=2", "media/abc.png"],
            "cover_image": "https://img.example/a.png?x=1&y=2",
            "article.content": '<section><img src="https://img.example/a.png?x=1&amp;y=2" '
            'alt="A"><p>说明</p></section><p><img src="media/abc.png" alt=""></p>'
            '<img src="https://img.example/a.png?x=1&amp;y=2" alt="again">',
        },
    ),
    (
        "default-cover",
        raw_article("<p>正文</p>"),
        {"default_cover": "https://img.example/brand.jpg"},
        {"cover_image": "https://img.example/brand.jpg"},
    ),
    (
        "long-body-cut-at-a-block",
        raw_article(LONG_BODY),
        {},
        {
            "article.content": lambda c: (
                len(c) < 20_000 and c.endswith("<p>00018" + "长" * 990 + "</p><p>…</p>")
            ),
        },
    ),
    (
        "comments-option",
        raw_article("<p>正文</p>"),
        {"need_open_comment": True},
        {"article.need_open_comment": 1, "article.only_fans_can_comment": 0},
    ),
]


def field_at(payload: dict[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize(
    ("article", "options", "expected"),
    [c[1:] for c in FORMAT_CASES],
    ids=[c[0] for c in FORMAT_CASES],
)
def test_format(article: Article, options: dict[str, Any], expected: dict[str, Any]) -> None:
    payload = offline_channel(**options).format(article)
    for path, want in expected.items():
        got = field_at(payload, path)
        assert want(got) if callable(want) else got == want, (path, got)
    for key, limit in {"title": 32, "author": 16, "digest": 128}.items():
        assert utf16_length(payload["article"][key]) <= limit
    assert "thumb_media_id" not in payload["article"]  # known only once the cover is uploaded
    assert payload == offline_channel(**options).format(article)  # pure


# ---- send: the whole path -------------------------------------------------------------------


def test_publishes_with_cover_and_body_images(wx: Harness, images: BackgroundServer) -> None:
    article = article_with_images(
        images,
        body=f'<p>开幕式</p><p><img src="{images.url}/img/hall.png" alt="会场"></p><p>结束</p>',
    )
    delivery, receipt = deliver(wx.channel(), article)

    page = requests.get(receipt.remote_url or "", timeout=5)
    assert page.status_code == 200 and "职工技能大赛" in page.text
    assert f"{wx.base}/mmbiz/" in page.text and images.url not in page.text
    assert wx.stats() | {"token_fetches": 0} == wx.stats() | {
        "drafts": 0, "published": 1, "duplicate_posts": 0, "drafts_created": 1,
        "publish_submits": 1, "external_images_received": 0, "token_fetches": 0,
    }  # fmt: skip
    assert set(delivery.checkpoint) >= {
        "cover_media_id", "inline_images", "draft_media_id", "publish_id", "article_id",
    }  # fmt: skip
    assert receipt.remote_id == delivery.checkpoint["article_id"]


def test_sample_article_with_local_cover(wx: Harness) -> None:
    _, receipt = deliver(wx.channel(), sample())
    page = requests.get(receipt.remote_url or "", timeout=5).text
    assert "全国数字技能大赛决赛开幕" in page and "😀" in page and "阅读原文" in page
    assert wx.stats()["published"] == 1


def test_token_expiring_mid_run_is_refreshed_once(
    make_settings: Callable[..., Settings],
    redis_client: redis.Redis,
    redis_prefix: str,
    wechat_env: None,
    images: BackgroundServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1-second tokens: the one fetched before a slow step is dead when the step runs."""
    app = create_app(token_lifetime=1.0, publish_delay=0.1)
    with BackgroundServer(app) as server:
        wx = harness_for(server.url, make_settings, redis_client, redis_prefix, monkeypatch)
        channel = wx.channel(token_refresh_margin=0.05)
        wx.fault("/cgi-bin/draft/add", mode="delay", seconds=1.1)  # the token expires meanwhile
        delivery, receipt = deliver(channel, article_with_images(images, body="<p>正文</p>"))

        assert [type(f) for f in delivery.failures] == [AuthExpiredError]
        assert delivery.failures[0].code == "40001" and delivery.attempts == 1
        stats = wx.stats()
        assert (stats["drafts_created"], stats["published"], stats["duplicate_posts"]) == (1, 1, 0)
        assert (stats["token_fetches"], stats["materials"]) == (2, 1)  # the cover was not redone
        assert receipt.remote_url


def test_timeout_after_draft_stored_resumes_without_a_second_draft(
    wx: Harness, images: BackgroundServer
) -> None:
    wx.fault("/cgi-bin/draft/add", mode="timeout_after_store", seconds=3.0)
    delivery = Delivery(wx.channel(timeout=1.0), wx.channel().format(
        article_with_images(images, body="<p>正文</p>")
    ))  # fmt: skip
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    assert wx.stats()["drafts"] == 1  # stored, though the client never heard
    assert 0 < delivery.checkpoint["draft_requested"] <= time.time()  # when it was sent
    assert "draft_media_id" not in delivery.checkpoint

    delivery.until_delivered()
    stats = wx.stats()
    assert (stats["drafts_created"], stats["published"], stats["duplicate_posts"]) == (1, 1, 0)


def test_timeout_after_publish_submitted_is_not_submitted_again(
    wx: Harness, images: BackgroundServer
) -> None:
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    article = article_with_images(images, body="<p>正文</p>")
    delivery = Delivery(wx.channel(timeout=0.8), wx.channel().format(article))
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    receipt = delivery.until_delivered()
    stats = wx.stats()
    assert (stats["publish_submits"], stats["published"], stats["duplicate_posts"]) == (1, 1, 0)
    assert receipt.remote_url and receipt.remote_url.startswith(f"{wx.base}/s/")


def test_ambiguous_submit_found_300_deep_while_pages_fail(
    wx: Harness, images: BackgroundServer
) -> None:
    """Issue 11, item 3: the article sits under 300 newer ones, one listing page in five
    answers "system busy", and older history lies below the submit: delivered, once."""
    wx.seed(200, age_seconds=7200)  # published long before the submit: never walked
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    article = article_with_images(images, body="<p>正文</p>")
    channel = wx.channel(timeout=0.8, publish_reconcile_seconds=0)
    delivery = Delivery(channel, channel.format(article))
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    wx.wait_for("published", 201)  # the job the client never heard of has finished
    wx.seed(300)  # then the account kept publishing
    wx.fault("/cgi-bin/freepublish/batchget", code=-1, every=5, count=1000)

    receipt = delivery.until_delivered(attempts=12)

    stats = wx.stats()
    assert (stats["publish_submits"], stats["duplicate_posts"], stats["published"]) == (1, 0, 501)
    page = requests.get(receipt.remote_url or "", timeout=5)
    assert page.status_code == 200 and "职工技能大赛" in page.text
    resumed = [f for f in delivery.failures if "resumes at item" in f.reason]
    assert len(resumed) == 3 and not any(isinstance(f, PermanentError) for f in delivery.failures)
    # 16 pages hold the 300 newer articles and ours (each read once, the 3 failed ones
    # answered by the fault layer); the 200 older than the submit are never read
    assert stats["published_pages"] == 16
    assert "publish_lookup" not in delivery.checkpoint or not delivery.checkpoint["publish_lookup"]


def test_a_lookup_that_cannot_finish_is_retried_never_failed(
    wx: Harness, images: BackgroundServer
) -> None:
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    channel = wx.channel(timeout=0.8, publish_reconcile_seconds=0, publish_vanished_seconds=0)
    delivery = Delivery(channel, channel.format(article_with_images(images, body="<p>正文</p>")))
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    wx.seed(45)  # three pages above ours
    wx.fault("/cgi-bin/freepublish/batchget", mode="http", status=503, count=2)
    wx.fault("/cgi-bin/freepublish/batchget", code=45009, count=2)  # the day's quota is spent

    for _ in range(4):
        with pytest.raises(RetryableError) as caught:
            delivery.attempt()
        assert type(caught.value) is RetryableError and "resumes at item 0" in caught.value.reason

    assert wx.stats()["publish_submits"] == 1  # never submitted again on an unfinished lookup
    delivery.until_delivered()
    assert (wx.stats()["publish_submits"], wx.stats()["duplicate_posts"]) == (1, 0)


def test_a_submit_that_never_landed_is_made_again_once_the_lookup_is_complete(
    wx: Harness, images: BackgroundServer
) -> None:
    wx.fault("/cgi-bin/freepublish/submit", mode="http", status=502)  # a proxy: never arrived
    wx.seed(30, age_seconds=7200)
    channel = wx.channel(publish_reconcile_seconds=0)
    delivery = Delivery(channel, channel.format(article_with_images(images, body="<p>正文</p>")))

    delivery.until_delivered()

    stats = wx.stats()
    assert (stats["publish_submits"], stats["published"], stats["duplicate_posts"]) == (1, 31, 0)
    assert stats["published_pages"] == 1  # the newest page already reaches past the submit


def test_a_draft_that_left_the_box_unlisted_is_not_submitted_again(
    wx: Harness, images: BackgroundServer
) -> None:
    """Published, then deleted by hand in the console: never a second copy."""
    wx.fault("/cgi-bin/freepublish/submit", mode="timeout_after_store", seconds=2.0)
    channel = wx.channel(timeout=0.8, publish_reconcile_seconds=0, publish_vanished_seconds=0)
    delivery = Delivery(channel, channel.format(article_with_images(images, body="<p>正文</p>")))
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    wx.wait_for("published", 1)
    listed = requests.post(
        f"{wx.base}/cgi-bin/freepublish/batchget",
        params={"access_token": channel.api._tokens().get()},
        json={"offset": 0, "count": 1, "no_content": 1},
        timeout=5,
    ).json()
    channel.delete(listed["item"][0]["article_id"])

    with pytest.raises(PermanentError, match="removed on the platform"):
        delivery.attempt()
    assert wx.stats()["publish_submits"] == 1


def test_still_publishing_is_retried_by_polling_only(wx: Harness) -> None:
    delivery = Delivery(wx.channel(publish_wait=0), wx.channel().format(sample()))
    with pytest.raises(RetryableError) as caught:
        delivery.attempt()
    assert caught.value.code == "publish_status:1" and caught.value.retry_after == 0.1
    assert delivery.checkpoint["publish_id"]
    time.sleep(0.3)
    delivery.attempt()
    assert (wx.stats()["publish_submits"], wx.stats()["published"]) == (1, 1)


def test_failed_body_images_degrade_to_their_text(wx: Harness, images: BackgroundServer) -> None:
    wx.fault("/cgi-bin/media/uploadimg", code=40005)  # the platform refuses the first upload
    body = (
        f'<p><img src="{images.url}/img/refused.png" alt="被拒的图"></p>'
        f'<p><img src="{images.url}/img/gone.png" alt="消失的图"></p>'
        f'<p><img src="{images.url}/img/fine.png" alt="好图"></p>'
    )
    _, receipt = deliver(wx.channel(), article_with_images(images, body=body))
    stored = requests.get(receipt.remote_url or "", timeout=5).text
    assert "被拒的图" in stored and "消失的图" in stored
    assert stored.count(f'src="{wx.base}/mmbiz/') == 2  # the cover and the good body image
    assert wx.stats()["published"] == 1


@pytest.mark.parametrize("parsed", [True, False], ids=["parsed-article", "raw-article"])
def test_hostile_html_never_reaches_the_platform(
    wx: Harness, images: BackgroundServer, parsed: bool
) -> None:
    body = HOSTILE + f'<img src="{images.url}/img/pixel.png" alt="">'
    if parsed:
        article = article_with_images(images, body=body)
    else:
        article = raw_article(body, cover_image=f"{images.url}/img/cover.jpg")
    deliver(wx.channel(), article)
    stats = wx.stats()
    assert (stats["scripts_received"], stats["external_images_received"]) == (0, 0)
    content = wx.received()[0]["content"]
    for needle in (
        "<script",
        "onerror",
        "onclick",
        "javascript:",
        "class=",
        "style=",
        "<a ",
        "evil.example",
        images.url,
        "<iframe",
        "<form",
        "/etc/passwd",
    ):
        assert needle not in content, needle


# ---- failures: each one classified ----------------------------------------------------------

# (endpoint path, fault, expected class, expected code)
FAILURES: list[tuple[str, dict[str, Any], type[DeliveryError], str | None]] = [
    ("/cgi-bin/draft/add", {"code": 40001}, AuthExpiredError, "40001"),
    ("/cgi-bin/draft/add", {"code": 40014}, AuthExpiredError, "40014"),
    ("/cgi-bin/material/add_material", {"code": 42001}, AuthExpiredError, "42001"),
    ("/cgi-bin/draft/add", {"code": -1}, RetryableError, "-1"),
    ("/cgi-bin/draft/add", {"code": 45011}, RateLimitedError, "45011"),
    ("/cgi-bin/draft/add", {"mode": "http", "status": 503}, RetryableError, None),
    ("/cgi-bin/draft/add", {"mode": "http", "status": 429}, RateLimitedError, None),
    (
        "/cgi-bin/draft/add",
        {"mode": "timeout_after_store", "seconds": 2},
        OutcomeUnknownError,
        None,
    ),
    ("/cgi-bin/freepublish/get", {"mode": "delay", "seconds": 2}, RetryableError, None),
    ("/cgi-bin/draft/add", {"code": 45002}, PermanentError, "45002"),
    ("/cgi-bin/draft/add", {"code": 45166}, PermanentError, "45166"),
    ("/cgi-bin/draft/add", {"code": 40007}, PermanentError, "40007"),
    # (a cover the platform refuses, 40009, is replaced: see test_refused_cover_...)
    ("/cgi-bin/material/add_material", {"code": 45009}, RateLimitedError, "45009"),
    ("/cgi-bin/freepublish/submit", {"code": 48001}, PermanentError, "48001"),
    ("/cgi-bin/freepublish/submit", {"code": 53503}, PermanentError, "53503"),
    ("/cgi-bin/freepublish/submit", {"code": 99999}, PermanentError, "99999"),
    ("job:freepublish", {"code": 4}, PermanentError, "publish_status:4"),
    ("job:freepublish", {"code": 2}, PermanentError, "publish_status:2"),
    ("/cgi-bin/stable_token", {"code": 40125}, ReauthRequiredError, "40125"),
    ("/cgi-bin/stable_token", {"code": 40164}, ReauthRequiredError, "40164"),
    ("/cgi-bin/stable_token", {"code": 45009}, RateLimitedError, "45009"),
]


@pytest.mark.parametrize(
    ("path", "fault", "expected", "code"),
    FAILURES,
    ids=[f"{p.rsplit('/', 1)[-1]}-{f.get('code') or f.get('status') or f['mode']}"
         for p, f, _, _ in FAILURES],
)  # fmt: skip
def test_failure_classification(
    wx: Harness,
    caplog: pytest.LogCaptureFixture,
    path: str,
    fault: dict[str, Any],
    expected: type[DeliveryError],
    code: str | None,
) -> None:
    wx.fault(path, **{"mode": "error", **fault})
    channel = wx.channel(timeout=1.0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError) as caught:
        channel.send(channel.format(sample()), SendAttempt(1, 1, "k"))
    error = caught.value
    assert type(error) is expected
    assert error.code == code
    if isinstance(error, RetryableError) and code in ("45009", "45011"):  # daily / per minute
        assert (error.retry_after or 0) > 60 if code == "45009" else error.retry_after == 60
    assert_no_credentials(wx, error.reason, caplog)


def assert_no_credentials(wx: Harness, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    tokens = {
        r.getMessage() for r in caplog.records if r.name.startswith(("channels", "publisher"))
    }
    for text in (reason, *tokens):
        assert DEFAULT_SECRET not in text
        assert "access_token=" not in text and "://" not in text, text
        assert not TOKEN_LIKE.search(text), text  # sandbox tokens are 128 URL-safe characters


def test_rejected_token_is_replaced_even_if_the_platform_offers_it_again(
    wx: Harness, images: BackgroundServer
) -> None:
    channel = wx.channel()
    deliver(channel, sample())
    wx.fault("/cgi-bin/draft/add", code=40001)  # the sandbox itself still honours the token
    delivery, _ = deliver(channel, article_with_images(images, body="<p>再来</p>"))
    assert [f.code for f in delivery.failures] == ["40001"]
    # first fetch; after the rejection a normal fetch (same token back), then a forced one
    assert (wx.stats()["token_fetches"], wx.stats()["published"]) == (3, 2)


def test_publish_failure_keeps_the_draft_for_a_manual_retry(wx: Harness) -> None:
    wx.fault("job:freepublish", code=4)
    delivery = Delivery(wx.channel(), wx.channel().format(sample()))
    with pytest.raises(PermanentError, match="review rejected"):
        delivery.attempt()
    assert delivery.checkpoint["publish_id"] is None
    delivery.until_delivered()  # an editor's retry: same draft, submitted again
    stats = wx.stats()
    assert (stats["drafts_created"], stats["publish_submits"], stats["published"]) == (1, 2, 1)


def test_mass_send_is_done_once(wx: Harness) -> None:
    channel = wx.channel(mass_send=True)
    delivery, _ = deliver(channel, sample())
    assert wx.stats()["mass_sends"] == 1
    # The checkpoint of the push was lost: sending again answers 45065, which is success.
    delivery.checkpoint.pop("mass_msg_id")
    delivery.until_delivered()
    assert delivery.checkpoint["mass_msg_id"]
    assert (wx.stats()["mass_sends"], wx.stats()["duplicate_posts"]) == (1, 0)


def test_mass_quota_waits_for_the_daily_reset(wx: Harness) -> None:
    wx.fault("/cgi-bin/message/mass/sendall", code=45028)
    delivery = Delivery(wx.channel(mass_send=True), wx.channel().format(sample()))
    with pytest.raises(RetryableError) as caught:
        delivery.attempt()
    assert caught.value.code == "45028" and (caught.value.retry_after or 0) > 60
    assert delivery.checkpoint["article_id"]  # published; only the push is left
    delivery.until_delivered()
    assert (wx.stats()["published"], wx.stats()["mass_sends"]) == (1, 1)


def test_clientmsgid_is_stable_and_short() -> None:
    assert clientmsgid("k") == clientmsgid("k") != clientmsgid("k2")
    assert len(clientmsgid("x" * 500).encode()) <= 64


def test_missing_cover_is_permanent_when_the_channel_forbids_a_card(wx: Harness) -> None:
    channel = wx.channel(generated_cover=False)
    with pytest.raises(PermanentError, match="cover image"):
        channel.send(channel.format(raw_article("<p>无图</p>")), SendAttempt(1, 1, "k"))
    assert wx.stats()["materials"] == 0


def test_no_cover_gets_a_generated_card(wx: Harness) -> None:
    delivery, receipt = deliver(wx.channel(), raw_article("<p>无图</p>", title="职工技能大赛开幕"))

    page = requests.get(receipt.remote_url or "", timeout=5).text
    cover_url = re.search(r'class="cover" src="([^"]+)"', page)
    assert cover_url is not None
    card = PILImage.open(io.BytesIO(requests.get(cover_url.group(1), timeout=5).content))
    assert (card.format, card.size) == ("JPEG", (900, 383))
    assert _close(card.getpixel((5, 5)), (0xB3, 0x26, 0x1E))  # the newsroom's colour
    assert delivery.notes() == ["cover: generated a card with the title for '职工技能大赛开幕'"]


def test_unreachable_images_never_block_the_article(wx: Harness) -> None:
    """A cover and a body image on a host that refuses connections: three tries each
    (over the attempts), then the card and the alt text; the log names both images."""
    dead = f"http://127.0.0.1:{free_port()}"
    body = f'<p>开幕</p><p><img src="{dead}/img/photo.jpg" alt="会场全景"></p>'
    article = raw_article(body, cover_image=f"{dead}/img/cover.jpg")

    delivery, receipt = deliver(wx.channel(), article)

    stored = requests.get(receipt.remote_url or "", timeout=5).text
    assert "会场全景" in stored and dead not in stored
    tried = [f.reason.split(":")[0] for f in delivery.failures]
    assert tried == ["cover 标题", "cover 标题", "body image photo.jpg"]
    notes = delivery.notes()
    assert notes[0].startswith("cover cover.jpg not used: download image cover.jpg")
    assert notes[1].startswith("cover photo.jpg not used")  # the fallback: one try
    assert notes[2].startswith("cover: generated a card")
    assert notes[3].startswith("body image photo.jpg left out, its alt text kept")
    assert delivery.checkpoint["image_tries"] == {
        f"{dead}/img/cover.jpg": 3, f"{dead}/img/photo.jpg": 3
    }  # fmt: skip


def test_refused_cover_falls_back_to_a_body_image(wx: Harness, images: BackgroundServer) -> None:
    wx.fault("/cgi-bin/material/add_material", code=40009)  # the first cover is refused
    body = f'<p><img src="{images.url}/img/hall.png" alt="会场"></p>'
    delivery, receipt = deliver(wx.channel(), article_with_images(images, body=body))

    assert delivery.notes()[0].startswith("cover cover.jpg not used: upload cover")
    assert wx.stats()["materials"] == 1 and receipt.remote_url


def _close(pixel: Any, rgb: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 8 for a, b in zip(pixel, rgb, strict=True))


def test_missing_secret_names_the_variable(wx: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WX_TEST_SECRET")
    channel = wx.channel()
    with pytest.raises(PermanentError, match="WX_TEST_SECRET"):
        channel.send(channel.format(sample()), SendAttempt(1, 1, "k"))


def test_without_redis_there_is_no_token_cache(wx: Harness) -> None:
    channel = wx.channel()
    channel.context = ChannelContext(settings=channel.context.settings, redis=None)
    with pytest.raises(PermanentError, match="Redis"):
        channel.send(channel.format(sample()), SendAttempt(1, 1, "k"))
