"""Rebuilding a feed channel's documents from the store.

A rebuild reads the newest N delivered items, renders every document the
channel owns, saves them in the store (what the API serves) and writes
them atomically under `PUBLISHER_DATA_DIR/feeds/` (temp file + rename, so
a reader never sees half a document), then pings the WebSub hub, if any, for
each document it kept: the hub fetches what the API now serves.
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from channels.feed import FeedChannel, FeedDocument, FeedItem
from publisher import websub
from publisher.settings import Settings
from publisher.store import Store

log = logging.getLogger(__name__)


def rebuild_feed(settings: Settings, store: Store, channel: FeedChannel) -> list[FeedDocument]:
    built_at = datetime.now(UTC)  # taken before reading: later changes trigger another build
    items = [
        FeedItem(payload, updated)
        for payload, updated in store.feed_payloads(channel.name, settings.feeds.items)
    ]
    items = within_byte_budget(items, settings.feeds.max_bytes)
    documents = render_without_bad_items(channel, items, built_at)
    live: list[str] = []
    for document in documents:
        kept = store.save_feed_document(
            filename=document.filename,
            channel=channel.name,
            content_type=document.content_type,
            body=document.body,
            items=len(items),
            built_at=built_at,
        )
        if kept:
            write_atomically(settings.feeds_dir / document.filename, document.body)
            live.append(channel.feed_url(document.filename))
    websub.ping_hub(settings.feeds.hub_url, live)
    return documents


def within_byte_budget(items: list[FeedItem], budget: int) -> list[FeedItem]:
    """Items (newest first) whose full HTML fits `[feeds] max_bytes` together; every
    later item carries its summary as its content, so a few huge articles can
    neither make a document of tens of MB nor a rebuild of hundreds."""
    spent = 0
    kept: list[FeedItem] = []
    for item in items:
        content = str(item.get("content_html") or "")
        spent += len(content.encode("utf-8", "replace"))
        if spent > budget:
            summary = html.escape(str(item.get("summary") or item.get("title") or ""))
            item = FeedItem({**item.payload, "content_html": f"<p>{summary}</p>"}, item.updated)
        kept.append(item)
    return kept


# -- defence in depth: one item never freezes a feed ------------------------------------------


def render_without_bad_items(
    channel: FeedChannel, items: list[FeedItem], built_at: datetime
) -> list[FeedDocument]:
    """The channel's documents; if rendering fails, without the items that cannot render.

    Article validation refuses what lxml cannot write (U+FFFF and friends), so
    this only catches what slipped past it: a payload stored before that rule,
    or a rule nobody thought of. Each item is then tried alone, the ones that
    fail are left out and logged with the reason, and the rest are published,
    rather than every later rebuild raising and the feed never changing again.
    """
    try:
        return channel.render(items, built_at)
    except Exception as exc:  # any renderer failure: find the item behind it
        first = exc
    kept: list[FeedItem] = []
    for item in items:
        try:
            channel.render([item], built_at)
        except Exception as exc:
            log.error(
                "feed %s: left out article %s, it cannot be rendered (%s: %s)",
                channel.name, item.get("article_id"), type(exc).__name__, exc,
            )  # fmt: skip
            continue
        kept.append(item)
    if len(kept) == len(items):
        raise first  # not an item's fault: let the rebuild fail and be retried
    return channel.render(kept, built_at)


def write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
