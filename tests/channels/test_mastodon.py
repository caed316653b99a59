"""Mastodon channel: the status text as a table, then real HTTP end to end.

End-to-end tests post through the real channel to mastodon-mock (a
stateful Mastodon API server, run on loopback in a thread) and read back
with Mastodon.py. What mastodon-mock cannot answer (429 with an ISO 8601
`X-RateLimit-Reset`, 503, media still processing) comes from the contract
harness's `ScriptedPlatform`, scripted below as a Mastodon server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from mastodon import Mastodon, MastodonNotFoundError
from mastodon_mock.config import MastodonMockConfig, RateLimitConfig
from mastodon_mock.testing.seed import DEFAULT_TEST_SEED
from mastodon_mock.testing.server import MockServer

from channels.mastodon import (
    InstanceLimits,
    MastodonChannel,
    StatusParts,
    compose_status,
    hashtags,
    seconds_until_reset,
)
from channels.mastodon_length import mastodon_length
from publisher.domain.article import Article, load_article_file, parse_article
from publisher.domain.errors import (
    ConfigError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    ReauthRequiredError,
    RetryableError,
)
from tests.channels.conftest import MASTODON_TOKEN
from tests.channels.contract import Answer, ChannelFactory, ScriptedPlatform, attempt
from tests.conftest import SAMPLES

TOKEN = MASTODON_TOKEN
TOKEN_ENV = "PUBLISHER_TEST_MASTODON_TOKEN"
FAMILY = "👨‍👩‍👧‍👦"  # one grapheme, seven code points
WOMEN_FAMILY = "👩‍👩‍👧"


def article(**fields: Any) -> Article:
    base = {
        "id": "a1",
        "url": "https://news.example.org/a1.html",
        "title": "Title",
        "body_html": "<p>Body.</p>",
    }
    return parse_article({**base, **fields})


# --- the status text ----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """An article, the limit it is cut to, and the status expected."""

    name: str
    make: Callable[[], Article]
    length: int  # Mastodon's count of the status
    text: str | None = None  # the whole status, where it is short enough to read
    limit: int = 500
    check: Callable[[str], None] = field(default=lambda status: None)


def _emoji_intact(status: str) -> None:
    # Every family emoji survived whole: the cut fell between graphemes.
    summary = status.split("\n\n")[1]
    assert summary.count("👩") == 2 * summary.count(WOMEN_FAMILY) == 2 * 64
    assert summary.endswith(f"Team {WOMEN_FAMILY}…")
    assert len(status) > 500  # code points: only graphemes make this fit


def _long_url_kept(status: str) -> None:
    assert LONG_URL in status.split("\n\n")
    assert len(status) > 500  # the 300+ character URL counts 23


LONG_URL = "https://news.example.org/2026/11/20/" + "very-long-slug-" * 20 + "story.html"
LONG_SUMMARY = " ".join(
    f"Sentence number {i} says something about the contest, its winners and its rules."
    for i in range(1, 12)
)
ROWS = [
    Row(
        "English sample: derived summary, CamelCase tags",
        lambda: load_article_file(SAMPLES / "digital-talent.json"),
        356,
        'Contribute "Industrial" Power to Cultivating More High-level Digital Talents\n\n'
        "Recently, the Ministry of Human Resources and Social Security and other nine "
        "departments released the Action Plan for Accelerating Digital Talent Cultivation "
        "to Support the Development of the Digital…\n\n"
        "https://news.example.org/2024/04/22/digital-talent.html\n\n"
        "#DigitalEconomy #DigitalTalent #TradeUnions #skills",
    ),
    Row(
        "Chinese sample: CJK hashtags",
        lambda: load_article_file(SAMPLES / "skills-contest.md"),
        135,
        "全国数字技能大赛决赛开幕 三百余名职工同台竞技\n\n"
        "11月20日，全国职工数字应用技术技能大赛决赛开幕。来自各地的三百余名职工将在"
        "人工智能训练、数据分析和工业互联网运维三个赛项中同台竞技。\n\n"
        "https://news.example.org/2026/11/20/skills-contest.html\n\n"
        "#数字技能 #职工 #技能大赛",
    ),
    Row(
        "ZWJ emoji count one each and are never split",
        lambda: article(
            title=f"Family day {FAMILY}", summary=f"Team {WOMEN_FAMILY} " * 90, tags=["family"]
        ),
        496,
        check=_emoji_intact,
    ),
    Row(
        "a long URL counts 23",
        lambda: article(title="Long link", url=LONG_URL, summary=LONG_SUMMARY),
        430,
        check=_long_url_kept,
    ),
    Row(
        "summary cut at a sentence end for a strict instance",
        lambda: article(title="Contest", summary=LONG_SUMMARY, tags=["skills"]),
        121,
        "Contest\n\n"
        "Sentence number 1 says something about the contest, its winners and its rules.\n\n"
        "https://news.example.org/a1.html\n\n#skills",
        limit=140,
    ),
    Row(
        "tags dropped from the end, then the title cut, before the link goes",
        lambda: article(
            title="A headline far too long for this instance " * 3,
            tags=["alpha", "beta", "gamma"],
            summary="Dropped entirely.",
        ),
        58,
        "A headline far too long for this…\n\nhttps://news.example.org/a1.html",
        limit=60,
    ),
    Row(
        "summary equal to the title is not repeated",
        lambda: article(title="Same words", summary="Same words"),
        35,
        "Same words\n\nhttps://news.example.org/a1.html",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_status_text(row: Row) -> None:
    limits = InstanceLimits(max_characters=row.limit)
    status = compose_status(StatusParts.of(row.make(), max_hashtags=5), limits)
    if row.text is not None:
        assert status == row.text
    assert mastodon_length(status) == row.length <= row.limit
    row.check(status)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["skills"], ("skills",)),
        (["digital economy"], ("DigitalEconomy",)),
        (["数字 经济", "数字技能"], ("数字经济", "数字技能")),
        (["C++", "COVID-19", "#already"], ("C", "COVID19", "already")),
        (["naïve café", "rock'n'roll"], ("NaïveCafé", "RockNRoll")),
        (["2024", "___", "!!"], ()),  # Mastodon needs a letter in a hashtag
        (["Skills", "skills", "SKILLS"], ("Skills",)),
        (["under_score tag"], ("Under_scoreTag",)),
    ],
)
def test_hashtags_are_valid_mastodon_names(tags: list[str], expected: tuple[str, ...]) -> None:
    assert hashtags(tags) == expected


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("see https://example.org/a", 4 + 23),
        ("see https://example.org/a.", 4 + 23 + 1),  # "." is not part of the URL
        ("(https://example.org/a)", 1 + 23 + 1),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", 23),  # balanced parens stay in
        ("https://example.org/x/", 23),
        ("读https://example.org/新闻。", 1 + 23 + 1),
        (f"{FAMILY}🇨🇳👍🏽", 3),
    ],
)
def test_mastodon_length(text: str, length: int) -> None:
    assert mastodon_length(text) == length


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T03:02:00.000Z", 120.0),  # Mastodon: ISO 8601
        ("2026-11-26T03:02:00.000000Z", 120.0),
        ("2026-11-26T11:02:00+08:00", 120.0),
        ("1795662120", 120.0),  # Unix time (mastodon-mock)
        ("30", 30.0),  # a delay
        ("2026-11-26T02:00:00Z", 0.0),  # already past
        ("soon", None),
        (None, None),
    ],
)
def test_seconds_until_reset(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC).timestamp()
    assert seconds_until_reset(value, now) == expected


# --- the channel, built from real settings ----------------------------------


@pytest.fixture
def channel_for(build: ChannelFactory) -> Callable[..., MastodonChannel]:
    """A channel against `base_url`, with the token in the environment (as in production)."""

    def make(base_url: str, *, use_redis: bool = True, **options: Any) -> MastodonChannel:
        table = {"base_url": base_url, "access_token_env": TOKEN_ENV, "timeout": 5.0, **options}
        channel = build(
            "mastodon", name="masto", env={TOKEN_ENV: TOKEN}, use_redis=use_redis, **table
        )
        assert isinstance(channel, MastodonChannel)
        return channel

    return make


def test_format_is_the_stock_status_and_options(
    channel_for: Callable[..., MastodonChannel],
) -> None:
    channel = channel_for("https://mastodon.example", visibility="unlisted", upload_cover=False)
    sample = load_article_file(SAMPLES / "skills-contest.md")
    post = channel.format(sample)
    assert post["status"] == ROWS[1].text
    assert post["language"] == "zh"
    assert post["visibility"] == "unlisted"
    assert post["cover"] is None
    json.dumps(post)  # the payload is stored, so it must be JSON


def test_format_keeps_the_cover_by_default(channel_for: Callable[..., MastodonChannel]) -> None:
    sample = load_article_file(SAMPLES / "skills-contest.md")
    post = channel_for("https://mastodon.example").format(sample)
    assert post["cover"] == str(SAMPLES / "skills-contest.jpg")
    assert post["visibility"] == "public"


@pytest.mark.parametrize(
    "options", [{"visibility": "everyone"}, {"upload_cover": "yes"}, {"max_hashtags": -1}]
)
def test_bad_options_are_config_errors(
    channel_for: Callable[..., MastodonChannel], options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=r"channels\.masto"):
        channel_for("https://mastodon.example", **options)


# --- end to end against mastodon-mock ----------------------------------------


def statuses_linking(client: Mastodon, url: str) -> list[Any]:
    """The account's statuses that carry `url` (each test posts its own article URL)."""
    me = client.me()
    return [s for s in client.account_statuses(me["id"], limit=40) if url in s["content"]]


def test_posts_one_status_with_the_formatted_text(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer, reader: Mastodon
) -> None:
    channel = channel_for(mock_server.base_url, upload_cover=False)
    story = article(id="e2e-post", url="https://news.example.org/e2e-post.html", tags=["e2e"])
    post = channel.format(story)

    receipt = channel.send(post, attempt(key="key-e2e-post"))

    assert reader.status_source(receipt.remote_id)["text"] == post["status"]
    assert [s["id"] for s in statuses_linking(reader, story.url)] == [receipt.remote_id]
    assert receipt.remote_url and receipt.remote_id in receipt.remote_url


def test_same_idempotency_key_posts_once(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer, reader: Mastodon
) -> None:
    channel = channel_for(mock_server.base_url)
    story = article(id="e2e-idem", url="https://news.example.org/e2e-idem.html")
    post = channel.format(story)

    first = channel.send(post, attempt(key="key-e2e-idem"))
    # The retry after an ambiguous timeout sends the same key again.
    again = channel.send(post, attempt(2, "key-e2e-idem", outcome_unknown=True))

    assert again == first
    assert len(statuses_linking(reader, story.url)) == 1
    # A new delivery (new key) is a new status: the key, not the text, de-duplicates.
    other = channel.send(post, attempt(key="key-e2e-idem-2"))
    assert other.remote_id != first.remote_id
    assert len(statuses_linking(reader, story.url)) == 2


def test_chinese_sample_with_cover(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer, reader: Mastodon
) -> None:
    channel = channel_for(mock_server.base_url)
    post = channel.format(load_article_file(SAMPLES / "skills-contest.md"))
    progress = attempt(key="key-e2e-zh")

    receipt = channel.send(post, progress)

    status = reader.status(receipt.remote_id)
    assert reader.status_source(receipt.remote_id)["text"] == post["status"]
    assert [m["id"] for m in status["media_attachments"]] == [progress.checkpoint["media_id"]]
    assert status["media_attachments"][0]["type"] == "image"


def test_update_then_delete(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer, reader: Mastodon
) -> None:
    channel = channel_for(mock_server.base_url)
    story = article(id="e2e-edit", url="https://news.example.org/e2e-edit.html")
    receipt = channel.send(channel.format(story), attempt(key="key-e2e-edit"))

    corrected = channel.format(story.model_copy(update={"title": "Corrected title"}))
    assert channel.update(receipt.remote_id, corrected).remote_id == receipt.remote_id
    assert reader.status_source(receipt.remote_id)["text"] == corrected["status"]

    channel.delete(receipt.remote_id)
    with pytest.raises(MastodonNotFoundError):
        reader.status(receipt.remote_id)
    channel.delete(receipt.remote_id)  # already gone: a retraction is done


def test_revoked_token_is_permanent_and_never_shown(
    channel_for: Callable[..., MastodonChannel],
    mock_server: MockServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "revoked-7f3a9c-secret"
    channel = channel_for(mock_server.base_url)
    monkeypatch.setenv(TOKEN_ENV, secret)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ReauthRequiredError) as caught:
        channel.send(channel.format(article()), attempt(key="key-e2e-401"))

    assert caught.value.http_status == 401
    assert "re-authorise" in caught.value.reason and TOKEN_ENV in caught.value.reason
    assert "requires an authenticated user" in caught.value.reason  # the server's words
    assert secret not in caught.value.reason and secret not in caplog.text


def test_rejections_carry_the_servers_reason(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer
) -> None:
    channel = channel_for(mock_server.base_url)
    empty = {**channel.format(article()), "status": " "}
    with pytest.raises(PermanentError, match="Text can't be blank") as blank:
        channel.send(empty, attempt(key="key-e2e-422"))
    assert blank.value.http_status == 422

    with pytest.raises(PermanentError, match="Record not found") as missing:
        channel.update("999999999", channel.format(article()))
    assert missing.value.http_status == 404


def test_editing_another_accounts_status_is_forbidden(
    channel_for: Callable[..., MastodonChannel], mock_server: MockServer
) -> None:
    bob = Mastodon(access_token="bob_token", api_base_url=mock_server.base_url)
    theirs = bob.status_post("Bob's own words")
    channel = channel_for(mock_server.base_url)
    with pytest.raises(PermanentError, match="not allowed") as caught:
        channel.update(str(theirs["id"]), channel.format(article()))
    assert caught.value.http_status == 403


def test_instance_limits_are_cached_in_redis(
    channel_for: Callable[..., MastodonChannel],
    mock_server: MockServer,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    channel = channel_for(mock_server.base_url, upload_cover=False)
    channel.send(channel.format(article(id="e2e-cache")), attempt(key="key-e2e-cache"))

    key = f"{redis_prefix}mastodon:instance:127.0.0.1:{mock_server.port}"
    assert 0 < redis_client.ttl(key) <= 3600
    assert json.loads(redis_client.get(key) or b"{}")["max_characters"] == 500


def test_mock_rate_limit_is_retryable_with_the_reset_wait(
    channel_for: Callable[..., MastodonChannel],
) -> None:
    """mastodon-mock's own limiter: 429, X-RateLimit-Reset as Unix time, no Retry-After."""
    config = MastodonMockConfig(
        seed=DEFAULT_TEST_SEED, ratelimit=RateLimitConfig(enabled=True, limit=1)
    )
    with MockServer(config=config) as limited:
        channel = channel_for(limited.base_url, use_redis=False)
        # The instance read uses the one allowed request; the post is refused.
        with pytest.raises(RetryableError) as caught:
            channel.send(channel.format(article()), attempt(key="key-e2e-429"))
    assert caught.value.http_status == 429
    assert caught.value.retry_after is not None and 200 <= caught.value.retry_after <= 301


# --- a scripted remote server, for answers mastodon-mock cannot give ---------

INSTANCE, STATUSES, UPLOAD, MEDIA = (
    "/api/v2/instance", "/api/v1/statuses", "/api/v2/media", "/api/v1/media/m1"
)  # fmt: skip
PROCESSING = Answer(206, {"id": "m1", "url": None})


@pytest.fixture
def remote(platform: ScriptedPlatform) -> tuple[ScriptedPlatform, str]:
    """The contract harness's platform answering as a Mastodon server would.

    An upload is accepted for processing (202); the media is ready on the
    first poll unless a test queues `PROCESSING` answers before it.
    """
    platform.reset(
        {
            INSTANCE: Answer(200, {"configuration": {"statuses": {"max_characters": 500}}}),
            STATUSES: Answer(200, {"id": "9001", "url": "https://remote.example/@news/9001"}),
            UPLOAD: Answer(202, {"id": "m1", "type": "image", "url": None}),
            MEDIA: Answer(200, {"id": "m1", "url": "https://remote.example/m1.jpg"}),
        }
    )
    return platform, platform.url


def posted(platform: ScriptedPlatform) -> list[dict[str, Any]]:
    return [json.loads(seen.body) for seen in platform.requests_to(STATUSES)]


def test_rate_limit_waits_until_the_iso_reset(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    # Mastodon writes the reset as ISO 8601 UTC with microseconds and a Z.
    reset = (datetime.now(UTC) + timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    platform.fault(STATUSES, Answer(429, {"error": "Too many requests"}, headers=headers))
    channel = channel_for(url, upload_cover=False)

    with pytest.raises(RetryableError) as caught:
        channel.send(channel.format(article()), attempt(key="key-429"))

    assert caught.value.http_status == 429
    assert caught.value.retry_after is not None and 115 <= caught.value.retry_after <= 121


def test_retry_after_wins_over_the_reset(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    headers = {"Retry-After": "7", "X-RateLimit-Reset": "2099-01-01T00:00:00Z"}
    platform.fault(STATUSES, Answer(429, {"error": "Too many requests"}, headers=headers))
    channel = channel_for(url, upload_cover=False)
    with pytest.raises(RetryableError) as caught:
        channel.send(channel.format(article()), attempt(key="key-429b"))
    assert caught.value.retry_after == 7


@pytest.mark.parametrize(
    ("code", "body", "headers", "kind", "reason"),
    [
        (503, {"error": "Service Unavailable"}, {}, RetryableError, "platform error HTTP 503"),
        (502, "<html>Bad Gateway</html>", {}, RetryableError, "platform error HTTP 502"),
        (413, "<html>Too Large</html>", {}, PermanentError, "post status: HTTP 413"),
        (301, {}, {"Location": "/elsewhere"}, PermanentError, "post status: HTTP 301"),
        (
            422,
            {"error": "Validation failed: Text character limit of 500 exceeded"},
            {},
            PermanentError,
            "character limit of 500 exceeded (HTTP 422)",
        ),
    ],
)
def test_answers_are_classified(
    channel_for: Callable[..., MastodonChannel],
    remote: tuple[ScriptedPlatform, str],
    code: int,
    body: dict[str, Any] | str,
    headers: dict[str, str],
    kind: type[Exception],
    reason: str,
) -> None:
    platform, url = remote
    if isinstance(body, str):
        answer = Answer(code, raw=body.encode(), headers=headers, content_type="text/html")
    else:
        answer = Answer(code, body, headers=headers)
    platform.fault(STATUSES, answer)
    channel = channel_for(url, upload_cover=False)
    with pytest.raises(kind) as caught:
        channel.send(channel.format(article()), attempt(key=f"key-{code}"))
    assert isinstance(caught.value, DeliveryError)
    assert caught.value.http_status == code
    assert reason in caught.value.reason and TOKEN not in caught.value.reason


def test_timeout_is_outcome_unknown_and_the_retry_reuses_the_key(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    platform.fault(STATUSES, Answer(200, {"id": "9001"}, delay=2.0))  # answered too late
    channel = channel_for(url, upload_cover=False, timeout=0.5)
    post = channel.format(article())

    with pytest.raises(OutcomeUnknownError):
        channel.send(post, attempt(key="key-timeout"))
    receipt = channel.send(post, attempt(2, "key-timeout", outcome_unknown=True))

    assert receipt.remote_id == "9001"
    keys = [seen.headers.get("Idempotency-Key") for seen in platform.requests_to(STATUSES)]
    assert keys == ["key-timeout", "key-timeout"]


def test_stricter_instance_recuts_and_is_read_once(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    platform.routes[INSTANCE] = Answer(
        200,
        {"configuration": {"statuses": {"max_characters": 120, "characters_reserved_per_url": 30}}},
    )
    channel = channel_for(url, upload_cover=False)
    story = article(summary=LONG_SUMMARY, tags=["skills"])
    post = channel.format(story)
    assert mastodon_length(post["status"], 30) > 120

    channel.send(post, attempt(key="key-strict-1"))
    channel.send(post, attempt(key="key-strict-2"))

    sent = posted(platform)[0]["status"]
    assert mastodon_length(sent, 30) <= 120
    assert sent.split("\n\n")[-2:] == [story.url, "#skills"]
    assert len(platform.requests_to(INSTANCE)) == 1  # the second send used the Redis cache


def test_old_server_without_v2_instance_gets_stock_limits(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    platform.routes[INSTANCE] = Answer(404, {"error": "Record not found"})
    channel = channel_for(url, upload_cover=False)
    post = channel.format(article(summary=LONG_SUMMARY))
    channel.send(post, attempt(key="key-old"))
    assert posted(platform)[0]["status"] == post["status"]


def test_cover_processed_asynchronously_is_awaited(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    platform.fault(MEDIA, PROCESSING, PROCESSING)
    channel = channel_for(url, media_poll_interval=0.01)
    post = channel.format(load_article_file(SAMPLES / "skills-contest.md"))
    progress = attempt(key="key-media")

    channel.send(post, progress)

    (upload,) = platform.requests_to(UPLOAD)
    assert b'name="file"' in upload.body
    assert len(platform.requests_to(MEDIA)) == 3  # 202, then 206, 206, 200
    assert posted(platform)[0]["media_ids"] == ["m1"]
    assert progress.checkpoint == {"media_id": "m1", "media_ready": True}


def test_cover_still_processing_resumes_without_uploading_again(
    channel_for: Callable[..., MastodonChannel], remote: tuple[ScriptedPlatform, str]
) -> None:
    platform, url = remote
    ready = platform.routes[MEDIA]
    platform.routes[MEDIA] = PROCESSING
    channel = channel_for(url, media_poll_interval=0.01, media_wait_seconds=0.05)
    post = channel.format(load_article_file(SAMPLES / "skills-contest.md"))
    saved: list[dict[str, Any]] = []
    first = attempt(key="key-media-slow", save_checkpoint=saved.append)

    with pytest.raises(RetryableError, match="still processing"):
        channel.send(post, first)
    assert posted(platform) == [] and saved[-1] == {"media_id": "m1"}

    platform.routes[MEDIA] = ready
    started = time.monotonic()
    channel.send(post, attempt(2, "key-media-slow", checkpoint=dict(saved[-1])))
    assert time.monotonic() - started < 2
    assert len(platform.requests_to(UPLOAD)) == 1
    assert posted(platform)[0]["media_ids"] == ["m1"]
