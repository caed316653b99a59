"""Feed documents: read back by feedparser, checked against the JSON Feed 1.1 schema."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest

from channels import build_channel
from channels.base import ChannelContext
from channels.feed import FeedChannel, FeedItem
from publisher.config.settings import Settings
from publisher.delivery import feeds, publishing
from publisher.domain.article import load_article_file, parse_article
from publisher.store import Store
from publisher.store.feed_snapshot import read_feed
from tests.conftest import SAMPLES

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "jsonfeed-1.1.schema.json").read_text()
)


class FeedSite:
    """A store with the two feed channels, where 'delivering' is done by hand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.database_url)
        self.store.migrate()
        context = ChannelContext(settings, read_media=self.store.read_media)
        self.channels = {n: build_channel(c, context) for n, c in settings.channels.items()}

    def publish_delivered(self, data: Any) -> None:
        """Publish, then rebuild: the rebuild is what delivers a feed item."""
        article = data if not isinstance(data, dict) else parse_article(data)
        publishing.publish(article, self.store, self.channels)
        self.rebuild()

    def rebuild(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for channel in self.channels.values():
            assert isinstance(channel, FeedChannel)
            out.update(
                {
                    d.filename: d.body
                    for d in feeds.rebuild_feed(self.settings, self.store, channel).documents
                }
            )
        return out


@pytest.fixture
def site(make_settings: Callable[..., Settings]) -> Iterator[FeedSite]:
    s = FeedSite(make_settings(feeds={"items": 3, "hub_url": "http://127.0.0.1:9/hub"}))
    yield s
    s.store.dispose()


def story(n: int, **change: Any) -> dict[str, Any]:
    when = datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(hours=n)
    return {
        "id": f"story-{n}",
        "url": f"https://news.example.org/{n}.html",
        "title": f"Story {n}",
        "body_html": f"<p>Body of story {n}.</p>",
        "published_at": when.isoformat(),
        **change,
    }


def test_samples_read_back_by_feedparser_and_schema(site: FeedSite) -> None:
    for name in ("digital-talent.json", "skills-contest.md"):
        site.publish_delivered(load_article_file(SAMPLES / name))
    docs = site.rebuild()
    rss = feedparser.parse(docs["rss.xml"])
    atom = feedparser.parse(docs["atom.xml"])
    assert not rss.bozo and not atom.bozo
    assert rss.version == "rss20" and atom.version == "atom10"
    for parsed in (rss, atom):
        titles = [e.title for e in parsed.entries]
        assert titles[0].startswith("全国数字技能大赛")  # newest first
        assert titles[1].startswith("Contribute")
        assert parsed.entries[0].published_parsed is not None
        links = {link.rel: link.href for link in parsed.feed.links}
        assert links["self"].endswith(("/feeds/rss.xml", "/feeds/atom.xml"))
        assert links["hub"] == "http://127.0.0.1:9/hub"
    assert rss.feed.link == "https://news.example.org/"  # alternate, not self
    app = json.loads(docs["app.json"])
    jsonschema.validate(app, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert app["hubs"] == [{"type": "WebSub", "url": "http://127.0.0.1:9/hub"}]
    first = app["items"][0]
    assert first["image"].startswith(site.settings.public_url + "/media/")
    assert first["tags"] == ["数字技能", "职工", "技能大赛"]
    assert (site.settings.feeds_dir / "app.json").read_bytes() == docs["app.json"]


def test_feed_holds_newest_n_in_date_order_whatever_the_publish_order(site: FeedSite) -> None:
    for n in (2, 5, 1, 4, 3):
        site.publish_delivered(story(n))
    docs = site.rebuild()
    assert [e.title for e in feedparser.parse(docs["rss.xml"]).entries] == [
        "Story 5",
        "Story 4",
        "Story 3",
    ]
    assert [i["title"] for i in json.loads(docs["app.json"])["items"]] == [
        "Story 5",
        "Story 4",
        "Story 3",
    ]


def test_update_keeps_the_guid_and_changes_updated(site: FeedSite) -> None:
    site.publish_delivered(story(1))
    before = feedparser.parse(site.rebuild()["atom.xml"]).entries[0]
    site.publish_delivered(story(1, title="Story 1 (corrected)", url="https://news.example.org/1b"))
    after = feedparser.parse(site.rebuild()["atom.xml"]).entries[0]
    assert after.title == "Story 1 (corrected)"
    assert after.id == before.id
    assert datetime.fromisoformat(after.updated) > datetime.fromisoformat(before.updated)


def test_rebuild_is_deterministic_and_written_atomically(site: FeedSite) -> None:
    site.publish_delivered(story(1))
    channel = site.channels["app"]
    assert isinstance(channel, FeedChannel)
    built = datetime(2026, 11, 26, tzinfo=UTC)
    snapshot = read_feed(site.store, "app", 10)
    items = [FeedItem(i.payload, i.updated) for i in snapshot.items]
    assert channel.render(items, built) == channel.render(items, built)
    site.rebuild()
    leftovers = [p.name for p in site.settings.feeds_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert not site.store.feed_changed_since_build("app")
