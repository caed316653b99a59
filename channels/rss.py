"""RSS 2.0 and Atom 1.0 documents, written with feedgen.

feedgen's pitfalls (see the platform reference) are handled here: entries
are appended in our newest-first order (it prepends by default), every
date is timezone-aware and explicit (no `now()` defaults, so a rebuild of
the same items gives the same bytes), `rel="self"` is added before the
alternate link (RSS takes the last link as `<channel><link>`), and
rendering is serialised because feedgen's RFC 822 dates switch the
process locale, which is not thread-safe.

What the W3C Feed Validation Service checks is kept here too. Content is
`type="html"` (RFC 4287 allows text, html, xhtml or a MIME type). feedgen
1.0 drops every attribute of an entry's links (`rel`, `type`, `length`),
which turns a cover into a second `rel="alternate"`, so the Atom entry links
are written here: one alternate (`text/html`, with the article's language as
`hreflang`) and the cover as `rel="enclosure"` with its type and, when the
cover is ours, its byte length. A remote cover's length is unknown: Atom
leaves `length` out (it is optional, RFC 4287 4.2.7.6) and RSS says
`length="0"`, as the RSS Advisory Board's profile advises for an
enclosure whose size cannot be determined.
"""

from __future__ import annotations

import mimetypes
import threading
from datetime import datetime
from typing import ClassVar

from feedgen.feed import FeedGenerator
from lxml import etree

from channels.feed import ATOM_NS, FeedChannel, FeedDocument, FeedItem, with_hub_link

_render_lock = threading.Lock()


class RssChannel(FeedChannel):
    type_name: ClassVar[str] = "rss"

    def filenames(self) -> tuple[str, ...]:
        return (
            self.config.option("rss_path", "rss.xml"),
            self.config.option("atom_path", "atom.xml"),
        )

    def render(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        rss_name, atom_name = self.filenames()
        with _render_lock:
            rss = self._with_rss_hub(
                self._generator(items, built_at, self.feed_url(rss_name)).rss_str(pretty=True)
            )
            atom = self._generator(items, built_at, self.feed_url(atom_name)).atom_str(pretty=True)
        atom = _with_atom_entry_links(atom, items)
        return [
            FeedDocument(rss_name, "application/rss+xml; charset=utf-8", rss),
            FeedDocument(atom_name, "application/atom+xml; charset=utf-8", atom),
        ]

    def _with_rss_hub(self, rss: bytes) -> bytes:
        return with_hub_link(rss, self.context.settings.feeds.hub_url)

    def _generator(self, items: list[FeedItem], built_at: datetime, self_url: str) -> FeedGenerator:
        feeds = self.context.settings.feeds
        fg = FeedGenerator()
        fg.id(feeds.home_page_url)
        fg.title(feeds.title)
        fg.description(feeds.description)
        fg.author({"name": feeds.title})
        fg.link(href=self_url, rel="self")
        if feeds.hub_url:
            fg.link(href=feeds.hub_url, rel="hub")
        fg.link(href=feeds.home_page_url, rel="alternate")
        if feeds.language:
            fg.language(feeds.language)
        fg.generator("publisher")
        fg.updated(max((item.updated for item in items), default=built_at))
        fg.lastBuildDate(built_at)
        for item in items:
            self._entry(fg, item)
        return fg

    @staticmethod
    def _entry(fg: FeedGenerator, item: FeedItem) -> None:
        entry = fg.add_entry(order="append")
        entry.id(item.get("guid"))
        entry.guid(item.get("guid"), permalink=False)
        entry.title(item.get("title"))
        entry.link(href=item.get("url"), rel="alternate")  # RSS <link>; Atom's: see below
        entry.description(item.get("summary"))
        entry.summary(item.get("summary"))
        entry.content(item.get("content_html"), type="html")
        published = item.get("published")
        entry.published(published or item.updated)
        entry.updated(item.updated)
        if item.get("author"):
            entry.author({"name": item.get("author")})
        for tag in item.get("tags") or ():
            entry.category(term=tag)
        if item.get("image"):
            entry.enclosure(
                item.get("image"), str(item.get("image_length") or 0), _image_type(item)
            )


def _image_type(item: FeedItem) -> str:
    known = item.get("image_type") or mimetypes.guess_type(item.get("image"))[0]
    return str(known or "application/octet-stream")


def _with_atom_entry_links(atom: bytes, items: list[FeedItem]) -> bytes:
    """Each entry's links as RFC 4287 means them (entries are in `items`' order)."""
    root = etree.fromstring(atom)
    for element, item in zip(root.iterfind(f"{{{ATOM_NS}}}entry"), items, strict=True):
        old = element.findall(f"{{{ATOM_NS}}}link")
        at = element.index(old[0]) if old else len(element)
        tail = old[0].tail if old else None
        for link in old:
            element.remove(link)
        links = [{"rel": "alternate", "type": "text/html", "href": item.get("url")}]
        if item.get("language"):
            links[0]["hreflang"] = item.get("language")
        if item.get("image"):
            cover = {"rel": "enclosure", "type": _image_type(item), "href": item.get("image")}
            if item.get("image_length"):
                cover["length"] = str(item.get("image_length"))
            links.append(cover)
        for offset, attributes in enumerate(links):
            link = etree.Element(f"{{{ATOM_NS}}}link", attributes)
            link.tail = tail
            element.insert(at + offset, link)
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))
