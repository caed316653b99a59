"""What the feed channels share: the item they store and how a feed delivery 'sends'.

A feed delivery does not call anyone: delivering means the item joins the
channel's feed, and the documents are rebuilt once per burst by
`publisher.delivery.feeds`. The payload is formatted once at publish time, so a
rebuild renders exactly what `preview` showed.
"""

from __future__ import annotations

import uuid
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from lxml import etree

from channels.base import Channel, Correction, Receipt, SendAttempt
from channels.overrides import OverrideRule
from publisher.domain.article import SUMMARY_LIMIT, Article

ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class FeedDocument:
    filename: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class FeedItem:
    """One stored payload plus the time its article version was made."""

    payload: dict[str, Any]
    updated: datetime

    def get(self, key: str) -> Any:
        return self.payload.get(key)


class FeedChannel(Channel):
    is_feed: ClassVar[bool] = True
    correction: ClassVar[Correction] = Correction.EDIT
    can_delete: ClassVar[bool] = True
    #: Reads its items aloud: `speak` and `item_audio` answer (the voice edition).
    speaks: ClassVar[bool] = False
    override_rules: ClassVar[tuple[OverrideRule, ...]] = (OverrideRule("summary", SUMMARY_LIMIT),)

    def format(self, article: Article) -> dict[str, Any]:
        feeds = self.context.settings.feeds
        return {
            # Stable across updates and URL changes: derived from the site and the id only.
            "guid": "urn:uuid:"
            + str(uuid.uuid5(uuid.NAMESPACE_URL, feeds.home_page_url + article.id)),
            "article_id": article.id,
            "url": self.link(article),  # the guid above, not this, is the item's identity
            "title": article.title,
            "summary": article.overrides.get(self.name, {}).get("summary") or article.summary,
            "content_html": article.body_html,
            "author": article.author,
            "source": article.source,
            "tags": list(article.tags),
            "image": self.public_media_url(article.cover_image),
            **self._cover_facts(article.cover_image),
            "language": article.language,
            "published": article.published_at.isoformat() if article.published_at else None,
        }

    def _cover_facts(self, ref: str | None) -> dict[str, Any]:
        """A stored cover's byte length and type, for enclosures (a remote one's are unknown)."""
        if not (ref and ref.startswith("media/") and self.context.read_media):
            return {}
        data, content_type = self.context.read_media(ref)
        return {"image_length": len(data), "image_type": content_type}

    def public_media_url(self, ref: str | None) -> str | None:
        """Covers kept in the store are served by the API under /media/."""
        if ref and ref.startswith("media/"):
            return f"{self.context.settings.public_url}/{ref}"
        return ref

    def feed_url(self, filename: str) -> str:
        return f"{self.context.settings.public_url}/feeds/{filename}"

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        return self.update(post["guid"], post)

    def update(
        self, remote_id: str, post: dict[str, Any], attempt: SendAttempt | None = None
    ) -> Receipt:
        """The item is replaced in place (same guid) by the next rebuild."""
        return Receipt(remote_id=post["guid"], remote_url=self.feed_url(self.filenames()[0]))

    def delete(self, remote_id: str) -> None:
        """A retracted article is left out of the next rebuild; nothing to call."""

    def item_files(self, item: FeedItem) -> tuple[str, ...]:
        """The media files this channel made for `item` alone (a voice episode's audio),
        which live exactly as long as the item does.

        The rebuild calls it for every item of a document it makes live and keeps the
        answer with the delivery; files an item held that the new document no longer
        does, because its article was retracted or a correction replaced them, are
        deleted in the transaction that makes that document live
        (`publisher.delivery.feeds`). Covers and artwork are shared: never listed.
        """
        return ()

    def item_audio(self, payload: dict[str, Any] | None) -> str | None:
        """The media reference of the audio followers hear for a stored payload, once
        made (a voice episode's MP3): what the dashboard plays. None: text only."""
        return None

    def speak(self, payload: dict[str, Any]) -> bytes:
        """The payload read aloud now as MP3, kept nowhere: the API preview's `?audio=`,
        for a channel that `speaks`. Raises `InputError` on field `audio` when the
        script is longer than a preview may read."""
        raise NotImplementedError(f"{self.type_name} channels do not read articles aloud")

    @abstractmethod
    def filenames(self) -> tuple[str, ...]:
        """The documents this channel writes under the feeds folder."""

    @abstractmethod
    def render(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        """The documents for `items` (newest first)."""


def with_hub_link(rss: bytes, hub_url: str | None) -> bytes:
    """An RSS document that also advertises the WebSub hub (`[feeds] hub_url`).

    feedgen writes only `rel="self"` as an atom:link in RSS; WebSub discovery
    needs the hub beside it (the rebuild then pings the hub for the document).
    """
    if not hub_url:
        return rss
    root = etree.fromstring(rss)
    channel = root.find("channel")
    assert channel is not None
    link = etree.Element(f"{{{ATOM_NS}}}link", href=hub_url, rel="hub")
    channel.insert(list(channel).index(channel.find(f"{{{ATOM_NS}}}link")) + 1, link)
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))
