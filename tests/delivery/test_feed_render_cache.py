"""The rss channel keeps each item's rendered `<item>` and `<entry>`: the documents
it splices from them must be byte for byte what rendering every item gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.feed import FeedItem
from channels.rss import CACHED_WINDOWS, RssChannel
from publisher.domain.article import parse_article
from tests.delivery.test_feed_validity import full
from tests.delivery.test_feeds import FeedSite, site, story  # noqa: F401 - fixture

BUILT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def items_of(channel: RssChannel, articles: list[object]) -> list[FeedItem]:
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    return [
        FeedItem(channel.format(a), start + timedelta(minutes=n))  # type: ignore[arg-type]
        for n, a in enumerate(articles)
    ]


def test_spliced_documents_equal_whole_renders(site: FeedSite) -> None:  # noqa: F811
    channel = site.channels["site"]
    assert isinstance(channel, RssChannel)
    articles = [
        full(1),  # every optional field, CJK, a stored cover (enclosure with length)
        parse_article(story(2, cover_image="https://cdn.example.org/cover.png")),
        parse_article(story(3)),  # no optional field
        parse_article(story(4, title="Ampersands & <angle> \"quotes\" 'too'", tags=["a&b"])),
    ]
    items = items_of(channel, articles)
    for window in (items, items[:1], items[::-1], [], items[1:3]):
        spliced = channel.render(window, BUILT)  # fills the cache, then reads from it
        again = channel.render(window, BUILT)
        whole = channel.render_uncached(window, BUILT)
        assert [d.body for d in spliced] == [d.body for d in whole] == [d.body for d in again]
        assert [d.filename for d in spliced] == ["rss.xml", "atom.xml"]


def test_an_edited_item_is_rendered_again_and_the_cache_stays_bounded(
    site: FeedSite,  # noqa: F811
) -> None:
    channel = site.channels["site"]
    assert isinstance(channel, RssChannel)
    [item] = items_of(channel, [parse_article(story(1))])
    channel.render([item], BUILT)
    edited = FeedItem({**item.payload, "title": "Story 1, corrected"}, item.updated)
    body = channel.render([edited], BUILT)[0].body
    assert b"Story 1, corrected" in body and b"<title>Story 1</title>" not in body

    limit = max(64, CACHED_WINDOWS * site.settings.feeds.items)
    many = items_of(channel, [parse_article(story(n)) for n in range(limit + 10)])
    for start in range(0, len(many), 3):
        channel.render(many[start : start + 3], BUILT)
    assert len(channel._rendered) == limit
