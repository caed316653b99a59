"""Per-channel copy and tracked links at the channel boundary: what `format` builds from
overrides and `utm`, and what `check_overrides` refuses, counted as each platform counts."""

from __future__ import annotations

from typing import Any

import pytest

from channels import build_channel
from channels.base import Channel, ChannelContext
from channels.links import LinkTracking, with_query
from channels.mastodon_length import mastodon_length
from channels.overrides import check_all
from channels.weibo_length import weibo_length
from publisher.config.settings import ChannelConfig, Settings
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import ConfigError, InputError

URL = "https://news.example.org/2026/11/20/contest?ref=home#top"
UTM = {"source": "{channel}", "medium": "social", "campaign": "{id}-{date}"}


def channel(kind: str, name: str | None = None, **options: Any) -> Channel:
    """A channel as `preview` builds it: no Redis, no network."""
    settings = Settings.load({"PUBLISHER_DATA_DIR": "/nonexistent"})
    config = ChannelConfig.model_validate(
        {"name": name or kind, "type": kind, "access_token_env": "T", **options}
    )
    return build_channel(config, ChannelContext(settings))


def article(overrides: dict[str, Any] | None = None, **fields: Any) -> Article:
    return parse_article({
        "id": "copy-1", "url": URL, "title": "全国数字技能大赛决赛开幕",
        "body_html": "<p>来自各地的选手同台竞技。</p>", "tags": ["技能"],
        "published_at": "2026-11-20T07:30:00+08:00", "overrides": overrides or {}, **fields,
    })  # fmt: skip


def refusal(chan: Channel, item: Article) -> InputError:
    with pytest.raises(InputError) as caught:
        chan.check_overrides(item)
    return caught.value


# -- tracked links ------------------------------------------------------------------------


def test_utm_merges_with_the_query_and_keeps_the_fragment() -> None:
    link = channel("weibo", utm=UTM).link(article())
    # {date} is the day where the article was published (07:30 +08:00 is still the 20th).
    assert link == (
        "https://news.example.org/2026/11/20/contest?ref=home&utm_source=weibo"
        "&utm_medium=social&utm_campaign=copy-1-2026-11-20#top"
    )


def test_a_parameter_already_there_is_replaced_not_doubled_and_others_kept_byte_for_byte() -> None:
    url = "https://news.example.org/a?q=a%20b&utm_source=newsletter&x"
    assert with_query(url, [("utm_source", "weibo")]) == (
        "https://news.example.org/a?q=a%20b&x&utm_source=weibo"
    )


def test_without_utm_the_link_is_the_article_url() -> None:
    assert channel("weibo").link(article()) == URL


@pytest.mark.parametrize(
    ("utm", "problem"),
    [
        ("weibo", "must be a table"),
        ({"source": "{name}"}, "unknown placeholder {name}"),
        ({"source": "x", "channel": "y"}, "utm.channel: unknown key"),
        ({"source": ""}, "utm.source: must be a non-empty string"),
        ({"source": "{id"}, "utm.source:"),
    ],
)
def test_a_wrong_utm_table_stops_the_channel_from_being_built(utm: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"channels\.weibo\.utm") as caught:
        channel("weibo", utm=utm)
    assert problem in str(caught.value)


def test_utm_never_changes_the_feed_guid_nor_the_article() -> None:
    plain, tracked = channel("rss", "site"), channel("rss", "site", utm=UTM)
    item = article()
    assert tracked.format(item)["guid"] == plain.format(item)["guid"]
    assert "utm_source=site" in tracked.format(item)["url"]
    assert item.url == URL


def test_weibo_counts_a_long_tracked_link_by_its_bytes_and_still_fits() -> None:
    utm = {"source": "weibo", "campaign": "a-very-long-campaign-name-" * 3 + "{id}"}
    chan = channel("weibo", utm=utm)
    link = chan.link(article())
    assert len(link.encode()) > 140  # over 140 bytes a link counts bytes-140+20 units
    status = chan.format(article(summary="选手同台竞技。" * 30))["status"]
    assert link in status.split() and weibo_length(status) <= 140


def test_mastodon_counts_the_tracked_link_as_23_whatever_its_length() -> None:
    chan = channel("mastodon", "fediverse", base_url="https://m.example", utm=UTM)
    status = chan.format(article(summary="选手同台竞技。" * 100))["status"]
    assert chan.link(article()) in status
    assert 490 < mastodon_length(status) <= 500 < len(status)  # the 118-char link counted 23


# -- overrides: formatting ------------------------------------------------------------------


def test_weibo_text_override_gets_the_tracked_link_appended() -> None:
    chan = channel("weibo", utm=UTM)
    item = article({"weibo": {"text": "手写的微博 #话题# 欢迎转发"}})
    status = chan.format(item)["status"]
    assert status == f"手写的微博 ＃话题＃ 欢迎转发 {chan.link(item)}"  # no #topic# reaches Weibo


def test_weibo_text_that_names_the_article_url_gets_the_tracked_link_in_its_place() -> None:
    chan = channel("weibo", utm=UTM)
    item = article({"weibo": {"text": f"全文见 {URL} 欢迎转发"}})
    assert chan.format(item)["status"] == f"全文见 {chan.link(item)} 欢迎转发"


def test_a_channel_without_an_override_formats_as_before() -> None:
    chan = channel("weibo")
    assert chan.format(article({"wechat": {"title": "别的渠道"}})) == chan.format(article())


def test_mastodon_overrides_text_warning_and_visibility() -> None:
    chan = channel("mastodon", "fediverse", base_url="https://m.example")
    post = chan.format(article({"fediverse": {
        "text": "Hand-written.\n\nSecond paragraph.", "spoiler_text": "results",
        "visibility": "unlisted",
    }}, cover_image="https://news.example.org/c.jpg", cover_alt="A robot on stage"))  # fmt: skip
    assert post["status"] == f"Hand-written.\n\nSecond paragraph.\n\n{URL}"
    assert (post["spoiler_text"], post["visibility"]) == ("results", "unlisted")
    assert post["cover_alt"] == "A robot on stage"


def test_mastodon_generated_copy_leaves_room_for_the_content_warning() -> None:
    chan = channel("mastodon", "fediverse", base_url="https://m.example")
    warning = "内容提示" * 25  # 100 characters
    post = chan.format(article({"fediverse": {"spoiler_text": warning}}, summary="长" * 600))
    assert mastodon_length(post["status"]) + mastodon_length(warning) == 500


def test_wechat_title_and_digest_overrides_and_tracked_source_link() -> None:
    chan = channel("wechat", appid_env="A", secret_env="S", utm=UTM)
    post = chan.format(article({"wechat": {"title": "手写标题", "digest": "手写摘要"}}))
    assert (post["article"]["title"], post["article"]["digest"]) == ("手写标题", "手写摘要")
    assert "utm_source=wechat" in post["article"]["content_source_url"]


def test_feed_summary_override() -> None:
    post = channel("app_feed", "app").format(article({"app": {"summary": "For the app."}}))
    assert post["summary"] == "For the app."


# -- overrides: refused -------------------------------------------------------------------


def test_weibo_text_of_exactly_140_passes_and_141_is_refused_naming_the_limit() -> None:
    chan = channel("weibo", utm=UTM)
    fits = "字" * 129  # + a space (half) + the link (10) = 140 字
    chan.check_overrides(article({"weibo": {"text": fits}}))
    assert weibo_length(chan.format(article({"weibo": {"text": fits}}))["status"]) == 140
    error = refusal(chan, article({"weibo": {"text": fits + "字"}}))
    assert error.field == "overrides.weibo.text"
    assert error.problem == "is 141 字 (with the article link); the limit is 140 字"


def test_wechat_title_over_32_is_refused_and_an_emoji_counts_two() -> None:
    chan = channel("wechat", appid_env="A", secret_env="S")
    chan.check_overrides(article({"wechat": {"title": "标" * 32}}))
    error = refusal(chan, article({"wechat": {"title": "标" * 31 + "😀"}}))
    assert (error.field, error.problem) == (
        "overrides.wechat.title",
        "is 33 字; the limit is 32 字",
    )


def test_mastodon_counts_the_warning_with_the_text() -> None:
    chan = channel("mastodon", "fediverse", base_url="https://m.example")
    text = "x" * (500 - 2 - 23 - 10)  # + paragraph break + the link as 23 + a 10-char warning
    chan.check_overrides(article({"fediverse": {"text": text, "spoiler_text": "w" * 10}}))
    error = refusal(chan, article({"fediverse": {"text": text, "spoiler_text": "w" * 11}}))
    assert error.field == "overrides.fediverse.text" and "is 501 characters" in error.problem


@pytest.mark.parametrize(
    ("kind", "overrides", "field", "problem"),
    [
        ("weibo", {"title": "x"}, "overrides.weibo.title", "takes no 'title' override"),
        ("rss", {"text": "x"}, "overrides.rss.text", "(it takes: summary)"),
        ("webhook", {"summary": "x"}, "overrides.webhook.summary", "(it takes: none)"),
        ("mastodon", {"visibility": "everyone"}, "overrides.mastodon.visibility",
         "'everyone' is not one of public, unlisted, private, direct"),
    ],
)  # fmt: skip
def test_keys_a_channel_type_does_not_take_are_refused(
    kind: str, overrides: dict[str, str], field: str, problem: str
) -> None:
    chan = channel(kind, base_url="https://h.example")
    error = refusal(chan, article({kind: overrides}))
    assert error.field == field and problem in error.problem


def test_an_override_for_a_channel_not_in_the_matrix_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        check_all({"weibo": channel("weibo")}, article({"weibio": {"text": "typo"}}))
    assert caught.value.field == "overrides.weibio"
    assert caught.value.problem == "no such channel (configured: weibo)"


def test_link_tracking_reads_no_utm_as_untracked() -> None:
    config = ChannelConfig.model_validate({"name": "x", "type": "rss"})
    assert LinkTracking.of(config).templates == ()
