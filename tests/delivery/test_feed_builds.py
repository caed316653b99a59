"""A feed rebuild is what delivers feed items, on SQLite and PostgreSQL.

Each test drives the real rebuild (`publisher.delivery.feeds.rebuild_feed`)
against a real store: the documents, the rows it settles and the attempt log
are read back from the store and the disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import pytest
from sqlalchemy import update

from channels import build_channel
from channels.app_feed import AppFeedChannel
from channels.base import Channel, ChannelContext
from channels.feed import FeedChannel, FeedItem
from publisher.config.settings import Settings
from publisher.delivery import feeds, publishing
from publisher.domain.article import parse_article
from publisher.domain.errors import NotFound
from publisher.domain.states import Kind, State
from publisher.store import Store
from publisher.store.feed_builds import BuiltDocument, commit_feed_build
from publisher.store.feed_snapshot import read_feed
from publisher.store.models import DeliveryRow


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(feeds={"items": 3})


@pytest.fixture
def feed_channels(settings: Settings, store: Store) -> dict[str, Channel]:
    context = ChannelContext(settings, read_media=store.read_media)
    return {n: build_channel(c, context) for n, c in settings.channels.items()}


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


def publish(store: Store, channels: dict[str, Channel], *stories: dict[str, Any]) -> None:
    for data in stories:
        publishing.publish(parse_article(data), store, channels)


def rebuild(settings: Settings, store: Store, channel: Channel) -> feeds.Rebuild:
    assert isinstance(channel, FeedChannel)
    return feeds.rebuild_feed(settings, store, channel)


def rows(store: Store, channel: str) -> dict[str, DeliveryRow]:
    found = store.deliveries(channel=channel, limit=1000)
    return {d.article_id: d for d in found if d.kind == Kind.PUBLISH}


def titles_on_disk(settings: Settings, filename: str) -> list[str]:
    return [e.title for e in feedparser.parse((settings.feeds_dir / filename).read_bytes()).entries]


def test_delivered_only_by_the_build_that_puts_the_item_in_a_live_document(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1), story(2))
    assert {d.state for d in rows(store, "site").values()} == {State.PENDING}
    assert not (settings.feeds_dir / "rss.xml").exists()

    result = rebuild(settings, store, feed_channels["site"])

    assert result.kept and result.covered == 2
    site = rows(store, "site")
    assert {d.state for d in site.values()} == {State.DELIVERED}
    build_ids = {d.remote_id for d in site.values()}
    assert len(build_ids) == 1 and next(iter(build_ids)).startswith("build-")
    assert {d.remote_url for d in site.values()} == {f"{settings.public_url}/feeds/rss.xml"}
    assert titles_on_disk(settings, "rss.xml") == ["Story 2", "Story 1"]
    assert titles_on_disk(settings, "atom.xml") == ["Story 2", "Story 1"]
    stored = store.feed_document("rss.xml")
    assert stored is not None and stored.body == (settings.feeds_dir / "rss.xml").read_bytes()
    log = store.attempts(site["story-1"].id)
    assert [(a.outcome, a.number, a.message) for a in log] == [
        ("delivered", 1, f"{settings.public_url}/feeds/rss.xml")
    ]
    # The other feed channel has not been built: its items are still waiting.
    assert {d.state for d in rows(store, "app").values()} == {State.PENDING}
    assert store.feed_changed_since_build("site") is False


def test_an_item_that_cannot_be_rendered_fails_alone_and_the_document_goes_live(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1), story(2), story(3))
    # Straight into the store, past input validation: a title lxml refuses.
    with store.session() as session, session.begin():
        bad = session.get_one(DeliveryRow, rows(store, "site")["story-2"].id)
        bad.payload = {**(bad.payload or {}), "title": "Broken \uffff title"}

    result = rebuild(settings, store, feed_channels["site"])

    site = rows(store, "site")
    assert site["story-2"].state == State.FAILED
    assert "XML compatible" in (site["story-2"].last_error or "")
    assert result.failed == {site["story-2"].id: site["story-2"].last_error}
    assert site["story-1"].state == site["story-3"].state == State.DELIVERED
    assert titles_on_disk(settings, "rss.xml") == ["Story 3", "Story 1"]
    assert [a.outcome for a in store.attempts(site["story-2"].id)] == ["failed"]
    # Later articles keep going out.
    publish(store, feed_channels, story(4))
    rebuild(settings, store, feed_channels["site"])
    assert rows(store, "site")["story-4"].state == State.DELIVERED
    assert titles_on_disk(settings, "rss.xml") == ["Story 4", "Story 3", "Story 1"]


def test_json_feed_takes_the_title_xml_refuses(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1))
    with store.session() as session, session.begin():
        row = session.get_one(DeliveryRow, rows(store, "app")["story-1"].id)
        row.payload = {**(row.payload or {}), "title": "Odd \uffff title"}
    rebuild(settings, store, feed_channels["app"])
    assert rows(store, "app")["story-1"].state == State.DELIVERED
    app = json.loads((settings.feeds_dir / "app.json").read_text())
    assert app["items"][0]["title"] == "Odd \uffff title"


def test_an_older_build_finishing_last_changes_nothing(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1))
    older = read_feed(store, "site", 3)
    publish(store, feed_channels, story(2))
    rebuild(settings, store, feed_channels["site"])  # the newer build lands first
    newer_body = (settings.feeds_dir / "rss.xml").read_bytes()
    written: list[bool] = []

    kept = commit_feed_build(
        store,
        older,
        [BuiltDocument("rss.xml", "application/rss+xml", b"<old/>", 1)],
        document_url="x",
        failed={},
        write=lambda: written.append(True),
        started_at=datetime.now(UTC),
    )

    assert kept is False and written == []
    stored = store.feed_document("rss.xml")
    assert stored is not None and stored.body == newer_body
    assert {d.remote_url for d in rows(store, "site").values()} != {"x"}


def test_a_version_published_during_the_build_waits_for_the_next_one(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1))
    snapshot = read_feed(store, "site", 3)
    publish(store, feed_channels, story(1, title="Story 1, corrected"))
    channel = feed_channels["site"]
    assert isinstance(channel, FeedChannel)
    documents, failed, held = feeds.render_without_bad_items(channel, snapshot)
    commit_feed_build(
        store,
        snapshot,
        [BuiltDocument(d.filename, d.content_type, d.body, held) for d in documents],
        document_url="u",
        failed=failed,
        write=lambda: None,
        started_at=datetime.now(UTC),
    )
    # The build rendered version 1: it does not call version 2 delivered.
    assert rows(store, "site")["story-1"].state == State.PENDING
    rebuild(settings, store, channel)
    row = rows(store, "site")["story-1"]
    assert row.state == State.DELIVERED and row.article_version == 2
    assert titles_on_disk(settings, "rss.xml") == ["Story 1, corrected"]


def test_a_row_a_worker_holds_is_not_taken(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1))
    held = rows(store, "site")["story-1"]
    claim = store.claim(held.id, 60)  # e.g. a deliver task queued before an upgrade
    assert claim is not None
    rebuild(settings, store, feed_channels["site"])
    row = store.delivery(held.id)
    assert row.state == State.SENDING and row.lease_token == claim.token


def test_retraction_is_delivered_by_the_document_without_the_item(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1), story(2))
    rebuild(settings, store, feed_channels["site"])
    removals = store.retract("story-1", {"site": True, "app": True})
    assert removals  # one removal row per feed channel that had delivered it
    rebuild(settings, store, feed_channels["site"])
    siblings = store.siblings("story-1", "site")
    assert siblings[Kind.RETRACT].state == State.DELIVERED
    assert titles_on_disk(settings, "rss.xml") == ["Story 2"]


def test_a_burst_beyond_the_window_is_settled_and_says_so(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, *(story(n) for n in range(1, 6)))
    result = rebuild(settings, store, feed_channels["app"])
    assert result.covered == 5
    app = rows(store, "app")
    assert {d.state for d in app.values()} == {State.DELIVERED}
    assert "older than the newest 3" in (store.attempts(app["story-1"].id)[0].message or "")
    assert "older than" not in (store.attempts(app["story-5"].id)[0].message or "")


def test_an_editors_retry_of_a_failed_item_is_delivered_by_the_next_build(
    settings: Settings, store: Store, feed_channels: dict[str, Channel]
) -> None:
    publish(store, feed_channels, story(1))
    with store.session() as session, session.begin():
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.channel == "site")
            .values(payload={**(rows(store, "site")["story-1"].payload or {}), "title": "\uffff"})
        )
    rebuild(settings, store, feed_channels["site"])
    row = rows(store, "site")["story-1"]
    assert row.state == State.FAILED
    with store.session() as session, session.begin():  # an editor fixes the stored copy
        session.get_one(DeliveryRow, row.id).payload = {**(row.payload or {}), "title": "Fixed"}
    store.retry(row.id)
    rebuild(settings, store, feed_channels["site"])
    assert store.delivery(row.id).state == State.DELIVERED
    assert titles_on_disk(settings, "rss.xml") == ["Fixed"]


class CardFeed(AppFeedChannel):
    """A JSON feed that keeps one media file per item (a card of its title), as a voice
    channel keeps an episode's audio: the files live exactly as long as their item."""

    def item_files(self, item: FeedItem) -> tuple[str, ...]:
        assert self.context.save_media is not None
        return (self.context.save_media(str(item.get("title")).encode(), "text/plain", ".txt"),)


def test_an_items_files_go_with_its_retraction_or_correction_and_stay_otherwise(
    settings: Settings, store: Store
) -> None:
    context = ChannelContext(settings, read_media=store.read_media, save_media=store.save_media)
    cards = CardFeed(settings.channels["app"], context)
    channels: dict[str, Channel] = {"app": cards}

    def card(title: str) -> str:
        return f"media/{hashlib.sha256(title.encode()).hexdigest()}.txt"

    def kept(title: str) -> bool:
        try:
            store.read_media(card(title))
        except NotFound:
            return False
        return True

    publish(store, channels, story(1), story(2), story(3, title="Story 2"))
    assert rebuild(settings, store, cards).discarded == []
    assert rows(store, "app")["story-1"].checkpoint == {"files": [card("Story 1")]}
    publish(store, channels, story(4))  # story 1 scrolls out of the newest 3: its card stays
    assert rebuild(settings, store, cards).discarded == []
    assert kept("Story 1")

    # A correction: the new card is live, the old one goes with the same build.
    publish(store, channels, story(4, title="Story 4, corrected"))
    assert kept("Story 4")  # until the corrected document is live
    assert rebuild(settings, store, cards).discarded == [card("Story 4")]
    assert not kept("Story 4") and kept("Story 4, corrected")

    # Retractions: in the window or out of it, the item's files go; a file another
    # live item holds (two items titled "Story 2") stays.
    for article_id in ("story-1", "story-2"):
        store.retract(article_id, {"app": True})
    result = rebuild(settings, store, cards)
    assert result.discarded == [card("Story 1")]
    assert not kept("Story 1") and kept("Story 2")
    assert {d.state for d in store.deliveries(channel="app") if d.kind == Kind.RETRACT} == {
        State.DELIVERED
    }
    store.retract("story-3", {"app": True})
    assert rebuild(settings, store, cards).discarded == [card("Story 2")]
    assert not kept("Story 2") and kept("Story 4, corrected")
