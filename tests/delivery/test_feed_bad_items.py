"""A feed rebuild never fails because of one item: an item the renderer cannot write
(U+FFFF in a stored payload, as before validation refused it) is left out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree

from channels.base import Channel
from channels.feed import FeedChannel, FeedItem
from publisher.delivery.feeds import render_without_bad_items, within_byte_budget
from publisher.store.feed_snapshot import FeedSnapshot, SnapshotItem

WHEN = datetime(2026, 11, 20, tzinfo=UTC)


def payload(channel: FeedChannel, n: int, title: str) -> SnapshotItem:
    """Item `n` of the channel, waiting for this build (delivery id `n`)."""
    return SnapshotItem(
        delivery_id=n,
        version=1,
        payload={
            "guid": f"urn:uuid:0000000{n}-0000-0000-0000-000000000000",
            "article_id": f"a{n}",
            "url": f"https://news.example.org/{n}",
            "title": title,
            "summary": "S",
            "content_html": "<p>x</p>",
            "author": None,
            "source": None,
            "tags": [],
            "image": None,
            "language": None,
            "published": WHEN.isoformat(),
        },
        updated=WHEN,
        waiting=True,
    )


def test_an_unrenderable_item_is_left_out_and_the_rest_published(
    channels: dict[str, Channel],
) -> None:
    channel = channels["site"]
    assert isinstance(channel, FeedChannel)
    items = [payload(channel, 1, "Good one"), payload(channel, 2, "Bad\uffff"),
             payload(channel, 3, "Good three")]  # fmt: skip
    snapshot = FeedSnapshot(channel="site", build_id="build-test", read_at=WHEN, items=items)
    documents, failed, held = render_without_bad_items(channel, snapshot)
    assert list(failed) == [2] and "cannot be put in the feed" in failed[2] and held == 2
    for document in documents:
        text = document.body.decode()
        assert "Good one" in text and "Good three" in text and "Bad" not in text
        etree.fromstring(document.body)  # well-formed RSS and Atom


def test_the_rss_renderer_really_refuses_such_an_item(channels: dict[str, Channel]) -> None:
    channel = channels["site"]
    assert isinstance(channel, FeedChannel)
    with pytest.raises(ValueError):
        item = payload(channel, 2, "Bad\uffff")
        channel.render([FeedItem(item.payload, item.updated)], WHEN)


def test_past_the_byte_budget_items_carry_their_summary_only(channels: dict[str, Channel]) -> None:
    channel = channels["site"]
    assert isinstance(channel, FeedChannel)
    big = [payload(channel, n, f"Story {n}") for n in range(1, 21)]
    big = [replace(i, payload={**i.payload, "content_html": "<p>" + "x" * 1_000_000 + "</p>"})
           for i in big]  # fmt: skip
    kept = within_byte_budget(big, 4_000_000)
    full = [i for i in kept if len(i.payload["content_html"]) > 1000]
    assert len(full) == 3 and kept[:3] == big[:3]  # the newest, whole
    assert all(i.payload["content_html"] == "<p>S</p>" for i in kept[3:])
    documents = channel.render([FeedItem(i.payload, i.updated) for i in kept], WHEN)
    assert all(len(d.body) < 4 * 3_200_000 for d in documents)
