"""The Weibo channel: its formatter as a table, its transport against the real sandbox.

Every transport row runs the real `WeiboChannel` over HTTP on loopback
against `sandbox.weibo`, with a fault queued through the shared control
API, and checks how the failure is classified, or what was delivered.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image as PILImage

from channels.base import Receipt, SendAttempt, notes_of
from channels.weibo import MAX_LENGTH, WeiboApi, WeiboChannel, compose_status, status_url
from channels.weibo_length import weibo_length
from publisher.domain.article import Article, load_article_file, parse_article
from publisher.domain.errors import (
    ConfigError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    RetryableError,
)
from publisher.domain.text import cut, graphemes
from sandbox.server import BackgroundServer, free_port
from sandbox.weibo import WeiboState, create_app
from tests.channels.contract import ChannelFactory, attempt, offline_channel
from tests.conftest import SAMPLES

TOKEN = "wb-secret-2.00Zx9Kq7tokenvalue"
TOKEN_ENV = "WEIBO_TEST_ACCESS_TOKEN"
URL = "https://news.example.org/2026/11/21/final.html"


def article(**fields: Any) -> Article:
    return parse_article({"id": "a1", "url": URL, "body_html": "<p>正文</p>", **fields})


# -- format: (article -> status text) ---------------------------------------------------

LONG_URL = "https://news.example.org/" + "x" * 230  # 254 bytes: 67 字 on its own

FORMAT_ROWS: list[tuple[str, Callable[[], Article], str]] = [
    (
        "english sample",
        lambda: load_article_file(SAMPLES / "digital-talent.json"),
        '【Contribute "Industrial" Power to Cultivating More High-level Digital Talents】'
        "Recently, the Ministry of Human Resources and Social Security and other nine "
        "departments released the Action Plan for… "
        "https://news.example.org/2024/04/22/digital-talent.html "
        "digital economy digital talent trade unions skills",
    ),
    (
        "chinese sample with emoji in the body",
        lambda: load_article_file(SAMPLES / "skills-contest.md"),
        "【全国数字技能大赛决赛开幕 三百余名职工同台竞技】11月20日，全国职工数字应用技术技能大赛"
        "决赛开幕。来自各地的三百余名职工将在人工智能训练、数据分析和工业互联网运维三个赛项中"
        "同台竞技。 https://news.example.org/2026/11/20/skills-contest.html 数字技能 职工 技能大赛",
    ),
    (
        "very long CJK body without punctuation",
        lambda: article(
            title="长文", body_html="<p>" + "第一段的内容讲述了大赛的筹备过程" * 40 + "</p>"
        ),
        "【长文】" + "第一段的内容讲述了大赛的筹备过程" * 7 + "第一段的内容讲述了大赛的… " + URL,
    ),
    (
        "very long CJK body cut at a sentence end",
        lambda: article(
            title="大赛闭幕",
            body_html="<p>" + "比赛圆满结束。" * 60 + "</p>",
            tags=["技能", "职工"],
        ),
        "【大赛闭幕】" + "比赛圆满结束。" * 16 + f" {URL} 技能 职工",
    ),
    (
        "URL near the limit leaves a short summary, cut at a sentence end",
        lambda: article(
            title="长链接",
            url=LONG_URL,
            body_html="<p>" + "链接很长，摘要只剩一点。" * 20 + "</p>",
            tags=["链接"],
        ),
        "【长链接】" + "链接很长，摘要只剩一点。" * 5 + f" {LONG_URL} 链接",
    ),
    (
        "emoji and ZWJ sequences are never split",
        lambda: article(title="表情 😀", body_html="<p>" + "点赞👍🏽加油👨‍👩‍👧！" * 30 + "</p>"),
        "【表情 😀】" + "点赞👍🏽加油👨‍👩‍👧！" * 10 + f" {URL}",
    ),
    (
        "no #topic# survives: hashes become full-width",
        lambda: article(title="#数字技能# 大赛", summary="选手说 #加油# 了", tags=["C#", "话题"]),
        f"【＃数字技能＃ 大赛】选手说 ＃加油＃ 了 {URL} C＃ 话题",
    ),
    (
        "a hash inside the URL stays",
        lambda: article(title="锚点", summary="见正文", url="https://news.example.org/a#s2"),
        "【锚点】见正文 https://news.example.org/a#s2",
    ),
    (
        "a summary equal to the title is not repeated",
        lambda: article(title="只有标题", summary="只有标题"),
        f"【只有标题】 {URL}",
    ),
    (
        "tags give way to the summary",
        lambda: article(title="标" * 96, summary="摘要内容。" * 20, tags=["标签一", "标签二"]),
        "【" + "标" * 96 + "】" + "摘要内容。" * 6 + f" {URL}",
    ),
    (
        "a title over the limit is cut and the link stays",
        lambda: article(title="长" * 200, summary="摘要", tags=["标签"]),
        "【" + "长" * 126 + f"…】 {URL}",
    ),
]


@pytest.mark.parametrize(
    ("make", "expected"), [(row[1], row[2]) for row in FORMAT_ROWS], ids=[r[0] for r in FORMAT_ROWS]
)
def test_format(make: Callable[[], Article], expected: str) -> None:
    item = make()

    status = channel_for_format().format(item)["status"]

    assert status == expected
    assert weibo_length(status) <= MAX_LENGTH
    assert f" {item.url}" in status and status.count(item.url) == 1  # whole, recognisable


@pytest.mark.parametrize("make", [row[1] for row in FORMAT_ROWS], ids=[r[0] for r in FORMAT_ROWS])
def test_format_cuts_only_between_graphemes(make: Callable[[], Article]) -> None:
    item = make()
    status = compose_status(item)
    head = status.split("】", 1)[1].split(f" {item.url}", 1)[0].removesuffix("…")

    assert graphemes(head) == graphemes(item.summary.replace("#", "＃"))[: len(graphemes(head))]


def test_format_is_pure_and_stable() -> None:
    item = load_article_file(SAMPLES / "skills-contest.md")
    channel = channel_for_format()

    assert (
        channel.format(item)
        == channel.format(item)
        == {
            "status": compose_status(item),
            "pic": item.cover_image,  # attached as `pic` when the status is shared
        }
    )


def channel_for_format() -> WeiboChannel:
    """A channel with no Redis and no network: what `preview` builds."""
    channel = offline_channel("weibo", access_token_env=TOKEN_ENV)
    assert isinstance(channel, WeiboChannel)
    return channel


# -- the length rule and the cutter it relies on (publisher/text.py) ----------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("Test", 2),
        ("我司CEO与我司吉祥物...好大一坨！", 16),  # WeCase's own doctest
        ("中文", 2),
        ("😀", 1),
        ("a😀", 2),
        (URL, 10),
        ("https://news.example.org/" + "x" * 200, 53),  # 225 bytes: 225 - 140 + 20 units
        # Weibo's URL recogniser stops at Chinese: the rest is text, not URL.
        ("https://news.example.org/a" + "详情" * 24, 58),
    ],
)
def test_weibo_length(text: str, length: int) -> None:
    assert weibo_length(text) == length


def test_cut_never_ends_a_sentence_at_a_decimal_point() -> None:
    text = "In 2022 the economy reached 50.2 trillion yuan, or 41.5% of GDP and more words."

    assert cut(text, 40) == "In 2022 the economy reached 50.2…"


def test_cut_still_ends_at_an_ascii_full_stop_before_a_space() -> None:
    assert cut("First sentence here. Then 50.2 trillion yuan of the economy", 40) == (
        "First sentence here."
    )


# -- transport against the sandbox -------------------------------------------------------


@dataclass
class Weibo:
    """The sandbox plus the shared channel factory, pointed at it."""

    server: BackgroundServer
    state: WeiboState
    build: ChannelFactory

    @property
    def url(self) -> str:
        return self.server.url

    def channel(self, **options: Any) -> WeiboChannel:
        table = {
            "base_url": self.url,
            "access_token_env": TOKEN_ENV,
            "timeout": 2.0,
            "account": uuid.uuid4().hex,  # a fresh rate-limit bucket per test
            **options,
        }
        channel = self.build("weibo", name="weibo", **table)
        assert isinstance(channel, WeiboChannel)
        return channel

    def fault(self, **spec: Any) -> None:
        spec.setdefault("path", "/2/statuses/share.json")
        requests.post(f"{self.url}/_control/faults", json=spec, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_control/stats", timeout=5).json())

    def timeline(self) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.url}/2/statuses/user_timeline.json", params={"access_token": TOKEN}, timeout=5
        )
        return list(response.json()["statuses"])


@pytest.fixture(scope="module")
def weibo_server() -> Iterator[tuple[BackgroundServer, WeiboState]]:
    app = create_app(tokens={TOKEN: "newsroom"})
    with BackgroundServer(app) as server:
        yield server, app.state.weibo


@pytest.fixture
def weibo(
    weibo_server: tuple[BackgroundServer, WeiboState],
    build: ChannelFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Weibo:
    server, state = weibo_server
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    requests.post(f"{server.url}/_control/reset", timeout=5).raise_for_status()
    return Weibo(server, state, build)


def post_for(channel: WeiboChannel, title: str = "决赛开幕") -> dict[str, Any]:
    return channel.format(article(title=title, summary="三百余名职工同台竞技。", tags=["技能"]))


@dataclass(frozen=True)
class FaultRow:
    name: str
    fault: dict[str, Any]
    error: type[DeliveryError]
    code: str | None = None
    http_status: int | None = None
    retry_after: float | None = None


FAULT_ROWS = [
    FaultRow(
        "hourly user limit", {"mode": "error", "code": 10023}, RateLimitedError, "10023", 403, 600.0
    ),
    FaultRow("IP limit", {"mode": "error", "code": 10022}, RateLimitedError, "10022", 403, 600.0),
    FaultRow(
        "posting too often", {"mode": "error", "code": 20016}, RateLimitedError, "20016", 400, 300.0
    ),
    FaultRow("system error", {"mode": "error", "code": 10001}, RetryableError, "10001", 400),
    FaultRow("system busy", {"mode": "error", "code": 10009}, RetryableError, "10009", 400),
    FaultRow("HTTP 500", {"mode": "http", "status": 500}, RetryableError, None, 500),
    FaultRow("HTTP 429", {"mode": "http", "status": 429}, RateLimitedError, None, 429),
    FaultRow("expired token", {"mode": "error", "code": 21327}, ReauthRequiredError, "21327", 403),
    FaultRow("invalid token", {"mode": "error", "code": 21332}, ReauthRequiredError, "21332", 403),
    FaultRow("revoked token", {"mode": "error", "code": 21316}, ReauthRequiredError, "21316", 403),
    FaultRow("text too long", {"mode": "error", "code": 20012}, PermanentError, "20012", 400),
    FaultRow("no safe domain", {"mode": "error", "code": 10017}, PermanentError, "10017", 400),
    FaultRow("illegal content", {"mode": "error", "code": 20021}, PermanentError, "20021", 400),
    FaultRow("unknown code", {"mode": "error", "code": 12345}, PermanentError, "12345", 400),
    FaultRow(
        "repeat not on the timeline",
        {"mode": "error", "code": 20019},
        PermanentError,
        "20019",
        None,
    ),
    FaultRow("no answer in time", {"mode": "delay", "seconds": 1.0}, OutcomeUnknownError),
]


@pytest.mark.parametrize("row", FAULT_ROWS, ids=[row.name for row in FAULT_ROWS])
def test_fault_classification(weibo: Weibo, row: FaultRow) -> None:
    channel = weibo.channel(timeout=0.5)
    weibo.fault(**row.fault)

    with pytest.raises(DeliveryError) as caught:
        channel.send(post_for(channel), attempt())

    error = caught.value
    assert type(error) is row.error
    assert (error.code, error.http_status) == (row.code, row.http_status)
    if row.retry_after is not None:
        assert isinstance(error, RetryableError) and error.retry_after == row.retry_after
    assert TOKEN not in error.reason
    assert weibo.stats()["duplicate_posts"] == 0


@pytest.mark.parametrize("code", ["21327", "21332", "21301", "21315", "21319"])
def test_token_errors_ask_for_reauthorisation_without_the_token(
    weibo: Weibo, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = weibo.channel()
    weibo.fault(mode="error", code=int(code))

    with pytest.raises(ReauthRequiredError) as caught:
        channel.send(post_for(channel), attempt())

    assert "re-authorise" in caught.value.reason and TOKEN_ENV in caught.value.reason
    assert TOKEN not in caught.value.reason and TOKEN not in caplog.text


def test_a_real_expired_token(weibo: Weibo) -> None:
    weibo.state.expire_token(TOKEN)  # reset() forgets it for the next test
    channel = weibo.channel()

    with pytest.raises(PermanentError) as caught:
        channel.send(post_for(channel), attempt())

    assert caught.value.code == "21327" and "re-authorise" in caught.value.reason


def test_delivers_and_points_at_the_follower_page(weibo: Weibo) -> None:
    channel = weibo.channel()
    post = post_for(channel)

    receipt = channel.send(post, attempt())

    stored = weibo.timeline()
    assert [s["idstr"] for s in stored] == [receipt.remote_id]
    assert receipt.remote_url == f"{weibo.url}/status/{receipt.remote_id}"
    page = requests.get(receipt.remote_url, timeout=5)
    assert page.status_code == 200 and "决赛开幕" in page.text


def test_the_real_api_gets_weibo_com_links() -> None:
    assert status_url("https://api.weibo.com", "5001", "49900") == "https://weibo.com/5001/49900"


def test_ambiguous_timeout_then_reconcile_posts_once(weibo: Weibo) -> None:
    channel = weibo.channel(timeout=0.5)
    post = post_for(channel)
    weibo.fault(mode="timeout_after_store", seconds=1.0)

    with pytest.raises(OutcomeUnknownError):
        channel.send(post, attempt(1))
    receipt = channel.send(post, attempt(2, outcome_unknown=True))

    assert receipt.remote_id == weibo.timeline()[0]["idstr"]
    assert weibo.stats()["posts"] == 1 and weibo.stats()["duplicate_posts"] == 0


def test_ambiguous_timeout_then_20019_is_delivered(weibo: Weibo) -> None:
    """Even when the next attempt is not told to reconcile, 20019 finds the first post."""
    channel = weibo.channel(timeout=0.5)
    post = post_for(channel)
    weibo.fault(mode="timeout_after_store", seconds=1.0)
    with pytest.raises(OutcomeUnknownError):
        channel.send(post, attempt(1))

    receipt = channel.send(post, attempt(2))

    assert receipt.remote_id == weibo.timeline()[0]["idstr"]
    assert weibo.stats()["posts"] == 1 and weibo.stats()["duplicate_posts"] == 0
    assert weibo.stats()["rejected"] == {"20019": 1}


def test_outcome_unknown_but_nothing_landed_posts(weibo: Weibo) -> None:
    channel = weibo.channel()

    receipt = channel.send(post_for(channel), attempt(2, outcome_unknown=True))

    assert weibo.stats()["posts"] == 1 and receipt.remote_id == weibo.timeline()[0]["idstr"]


def test_20032_stored_but_slow_finds_the_status(weibo: Weibo) -> None:
    requests.post(f"{weibo.url}/_control/slow", json={"count": 1}, timeout=5).raise_for_status()
    channel = weibo.channel()

    receipt = channel.send(post_for(channel), attempt())

    assert receipt.remote_id == weibo.timeline()[0]["idstr"]


def test_20032_not_yet_visible_is_delivered_with_an_unknown_id(weibo: Weibo) -> None:
    weibo.fault(mode="error", code=20032)
    channel = weibo.channel()

    assert channel.send(post_for(channel), attempt()) == Receipt(remote_id="unknown")


def test_an_over_long_post_fails_without_a_request(weibo: Weibo) -> None:
    channel = weibo.channel()

    with pytest.raises(PermanentError) as caught:
        channel.send({"status": "字" * 141}, attempt())

    assert caught.value.code == "20012" and weibo.stats()["rejected"] == {}


def test_a_missing_token_names_the_variable(weibo: Weibo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    channel = weibo.channel()

    with pytest.raises(PermanentError) as caught:
        channel.send(post_for(channel), attempt())

    assert TOKEN_ENV in caught.value.reason


def test_connection_refused_is_retryable_not_ambiguous(weibo: Weibo) -> None:
    channel = weibo.channel(base_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(RetryableError) as caught:
        channel.send(post_for(channel), attempt())

    assert type(caught.value) is RetryableError


def test_delete_retracts_and_is_idempotent(weibo: Weibo) -> None:
    channel = weibo.channel()
    receipt = channel.send(post_for(channel), attempt())

    channel.delete(receipt.remote_id)
    channel.delete(receipt.remote_id)

    assert weibo.timeline() == []
    assert requests.get(str(receipt.remote_url), timeout=5).status_code == 404


@pytest.mark.parametrize("options", [{"posts_per_hour": 0}, {"posts_burst": "5"}])
def test_bad_rate_options_are_config_errors(weibo: Weibo, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        weibo.channel(**options)


def test_a_token_echoed_by_the_platform_is_scrubbed_from_the_reason() -> None:
    api = WeiboApi("http://127.0.0.1:9", TOKEN, TOKEN_ENV, 1.0)
    try:
        error = api._rejection("10001", {"error": f"bad request for {TOKEN}"}, "post status", 400)
    finally:
        api.close()

    assert TOKEN not in error.reason and "[token]" in error.reason


# -- pictures (issue 11, item 5) and reconciliation that never reposts (item 3) ------------


@dataclass
class Resumable:
    """Attempts that carry one checkpoint, as the engine persists it between attempts."""

    channel: WeiboChannel
    post: dict[str, Any]
    checkpoint: dict[str, Any]
    failures: list[DeliveryError]
    unknown: bool = False

    def attempt(self) -> Receipt:
        try:
            receipt = self.channel.send(
                self.post,
                SendAttempt(1, len(self.failures) + 1, "k-1", checkpoint=self.checkpoint,
                            outcome_unknown=self.unknown),
            )  # fmt: skip
        except RetryableError as error:
            self.failures.append(error)
            self.unknown = isinstance(error, OutcomeUnknownError)
            raise
        self.unknown = False
        return receipt

    def until_delivered(self, attempts: int = 10) -> Receipt:
        for _ in range(attempts):
            try:
                return self.attempt()
            except RetryableError:
                continue
        raise AssertionError(f"not delivered: {self.failures}")


def resumable(channel: WeiboChannel, post: dict[str, Any]) -> Resumable:
    return Resumable(channel, post, {}, [])


def picture_of(status_id: str, weibo: Weibo) -> bytes:
    return requests.get(f"{weibo.url}/pic/{status_id}", timeout=5).content


def test_the_cover_goes_out_as_pic(weibo: Weibo) -> None:
    channel = weibo.channel()
    post = channel.format(load_article_file(SAMPLES / "skills-contest.md"))

    receipt = channel.send(post, attempt())

    assert weibo.timeline()[0]["original_pic"].endswith(f"/pic/{receipt.remote_id}")
    assert picture_of(receipt.remote_id, weibo) == (SAMPLES / "skills-contest.jpg").read_bytes()


def test_the_first_body_image_when_there_is_no_cover() -> None:
    body = '<p>正文</p><p><img src="https://img.example/a.png?x=1&amp;y=2" alt="a"></p>'
    post = channel_for_format().format(article(title="图", body_html=body))
    assert post["pic"] == "https://img.example/a.png?x=1&y=2"
    assert "pic" not in channel_for_format().format(article(title="无图"))


def test_a_picture_over_5_mb_is_scaled_down(weibo: Weibo, tmp_path: Path) -> None:
    noise = PILImage.frombytes("RGB", (2200, 1600), os.urandom(2200 * 1600 * 3))
    big = tmp_path / "big.png"
    noise.save(big, "PNG")
    assert big.stat().st_size > 5 * 1024 * 1024
    channel = weibo.channel()

    receipt = channel.send({**post_for(channel), "pic": str(big)}, attempt())

    sent = PILImage.open(io.BytesIO(picture_of(receipt.remote_id, weibo)))
    assert sent.format == "JPEG" and len(picture_of(receipt.remote_id, weibo)) < 5 * 1024 * 1024


def test_a_refused_picture_posts_text_only_with_a_note(weibo: Weibo) -> None:
    weibo.fault(mode="error", code=20006)  # "image size too large"
    channel = weibo.channel()
    delivery = resumable(channel, {**post_for(channel), "pic": str(SAMPLES / "skills-contest.jpg")})

    receipt = delivery.attempt()

    assert "original_pic" not in weibo.timeline()[0] and receipt.remote_id
    assert notes_of(delivery.checkpoint) == [
        "picture skills-contest.jpg left out, the status went text only: "
        "post status: image size too large (code 20006)"
    ]
    assert weibo.stats()["posts"] == 1


def test_an_unreachable_picture_never_blocks_the_status(weibo: Weibo) -> None:
    channel = weibo.channel()
    dead = f"http://127.0.0.1:{free_port()}/photo.jpg"
    delivery = resumable(channel, {**post_for(channel), "pic": dead})

    delivery.until_delivered()

    assert [f.reason.split(":")[0] for f in delivery.failures] == ["picture photo.jpg"] * 2
    assert notes_of(delivery.checkpoint)[0].startswith("picture photo.jpg left out")
    assert weibo.stats()["posts"] == 1


def test_ambiguous_share_found_deep_in_the_timeline_while_pages_fail(weibo: Weibo) -> None:
    """The status sits under 300 newer ones, one timeline page in five fails and the
    account's older history lies below the request: found, never posted twice."""
    requests.post(f"{weibo.url}/_control/statuses", json={"count": 200, "age_seconds": 7200},
                  timeout=5).raise_for_status()  # fmt: skip
    channel = weibo.channel(timeout=0.5)
    delivery = resumable(channel, post_for(channel))
    weibo.fault(mode="timeout_after_store", seconds=1.0)
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    requests.post(f"{weibo.url}/_control/statuses", json={"count": 300}, timeout=5)
    weibo.fault(path="/2/statuses/user_timeline.json", mode="error", code=10001, every=5,
                count=1000)  # fmt: skip

    receipt = delivery.until_delivered()

    stats = weibo.stats()
    assert (stats["posts"], stats["duplicate_posts"]) == (1, 0)
    assert requests.get(str(receipt.remote_url), timeout=5).status_code == 200
    assert sum("resumes there" in f.reason for f in delivery.failures) == 1
    assert stats["timeline_pages"] == 7  # 301 statuses in pages of 50; never the old 200


def test_a_rate_limited_lookup_is_retried_and_never_posts(weibo: Weibo) -> None:
    channel = weibo.channel(timeout=0.5)
    delivery = resumable(channel, post_for(channel))
    weibo.fault(mode="delay", seconds=1.0)  # no answer: the share may or may not have landed
    with pytest.raises(OutcomeUnknownError):
        delivery.attempt()
    weibo.fault(path="/2/statuses/user_timeline.json", mode="error", code=10024, count=3)

    for _ in range(3):
        with pytest.raises(RetryableError) as caught:
            delivery.attempt()
        assert caught.value.code == "10024" and not isinstance(caught.value, PermanentError)
    delivery.until_delivered()

    assert (weibo.stats()["posts"], weibo.stats()["duplicate_posts"]) == (1, 0)
