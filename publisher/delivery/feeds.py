"""Rebuilding a feed channel's documents from the store.

A rebuild reads the newest N delivered items, renders every document the
channel owns, saves them in the store (what the API serves) and writes
them atomically under `PUBLISHER_DATA_DIR/feeds/` (temp file + rename, so
a reader never sees half a document), then pings the WebSub hub, if any, for
each document it kept: the hub fetches what the API now serves.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from channels.feed import FeedChannel, FeedDocument, FeedItem
from publisher.config.settings import Settings
from publisher.delivery import websub
from publisher.store import Store


def rebuild_feed(settings: Settings, store: Store, channel: FeedChannel) -> list[FeedDocument]:
    built_at = datetime.now(UTC)  # taken before reading: later changes trigger another build
    items = [
        FeedItem(payload, updated)
        for payload, updated in store.feed_payloads(channel.name, settings.feeds.items)
    ]
    documents = channel.render(items, built_at)
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
