"""JSON Feed 1.1 for the client app: cover, summary, tags and the full sanitized HTML."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from channels.feed import FeedChannel, FeedDocument, FeedItem

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


class AppFeedChannel(FeedChannel):
    type_name: ClassVar[str] = "app_feed"

    def filenames(self) -> tuple[str, ...]:
        return (self.config.option("path", "app.json"),)

    def render(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        feeds = self.context.settings.feeds
        (filename,) = self.filenames()
        document: dict[str, Any] = {
            "version": JSON_FEED_VERSION,
            "title": feeds.title,
            "home_page_url": feeds.home_page_url,
            "feed_url": self.feed_url(filename),
            "description": feeds.description,
            "items": [self._item(item) for item in items],
        }
        if feeds.language:
            document["language"] = feeds.language
        if feeds.hub_url:
            document["hubs"] = [{"type": "WebSub", "url": feeds.hub_url}]
        body = json.dumps(document, ensure_ascii=False, indent=2).encode()
        return [FeedDocument(filename, "application/feed+json; charset=utf-8", body)]

    @staticmethod
    def _item(item: FeedItem) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": item.get("guid"),
            "url": item.get("url"),
            "title": item.get("title"),
            "content_html": item.get("content_html"),
            "summary": item.get("summary"),
            "date_published": item.get("published") or item.updated.isoformat(),
            "date_modified": item.updated.isoformat(),
        }
        optional = {
            "image": item.get("image"),
            "tags": item.get("tags") or None,
            "language": item.get("language"),
            "authors": [{"name": item.get("author")}] if item.get("author") else None,
        }
        entry.update({k: v for k, v in optional.items() if v})
        return entry
