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

A rebuild renders each item once: an item's `<item>` and `<entry>` are cut
from a one-item document and kept (bounded, least recently used first out,
keyed by the item's content), and a document is the feed's head rendered
without items with the kept fragments spliced in, byte for byte what
rendering every item again gives (a test holds it to that). A burst's
rebuilds then cost the new items, not the whole window each time.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import threading
from collections import OrderedDict
from datetime import datetime
from typing import ClassVar

from feedgen.feed import FeedGenerator
from lxml import etree

from channels.feed import ATOM_NS, FeedChannel, FeedDocument, FeedItem, with_hub_link

_render_lock = threading.Lock()
#: Rendered items kept per channel, as a multiple of the items a document holds.
CACHED_WINDOWS = 4
RSS_ITEMS, RSS_END = b"    <item>", b"  </channel>"
ATOM_ENTRIES, ATOM_END = b"  <entry>", b"</feed>"


class RssChannel(FeedChannel):
    type_name: ClassVar[str] = "rss"

    def filenames(self) -> tuple[str, ...]:
        return (
            self.config.option("rss_path", "rss.xml"),
            self.config.option("atom_path", "atom.xml"),
        )

    def render(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        rss_name, atom_name = self.filenames()
        updated = max((item.updated for item in items), default=built_at)
        with _render_lock:
            fragments = [self._fragments(item, built_at) for item in items]
            rss_head = self._generator([], built_at, self.feed_url(rss_name), updated)
            atom_head = self._generator([], built_at, self.feed_url(atom_name), updated)
            rss = _splice(rss_head.rss_str(pretty=True), RSS_END, [f[0] for f in fragments])
            atom = _splice(atom_head.atom_str(pretty=True), ATOM_END, [f[1] for f in fragments])
        return [
            FeedDocument(rss_name, "application/rss+xml; charset=utf-8", self._with_rss_hub(rss)),
            FeedDocument(atom_name, "application/atom+xml; charset=utf-8", atom),
        ]

    def render_uncached(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        """Every item rendered in one document, as `render` did before it kept
        fragments: what the tests compare `render` with."""
        rss_name, atom_name = self.filenames()
        updated = max((item.updated for item in items), default=built_at)
        with _render_lock:
            rss = self._generator(items, built_at, self.feed_url(rss_name), updated)
            atom = self._generator(items, built_at, self.feed_url(atom_name), updated)
            rss_body, atom_body = rss.rss_str(pretty=True), atom.atom_str(pretty=True)
        return [
            FeedDocument(
                rss_name, "application/rss+xml; charset=utf-8", self._with_rss_hub(rss_body)
            ),
            FeedDocument(
                atom_name,
                "application/atom+xml; charset=utf-8",
                _with_atom_entry_links(atom_body, items),
            ),
        ]

    def _fragments(self, item: FeedItem, built_at: datetime) -> tuple[bytes, bytes]:
        """The item's `<item>` and `<entry>` as they appear in any document (caller
        holds the render lock). An item that cannot be rendered raises, as before."""
        key = _item_key(item)
        cache = self._rendered
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        url = self.feed_url("item")
        rss = self._generator([item], built_at, url, item.updated).rss_str(pretty=True)
        atom = self._generator([item], built_at, url, item.updated).atom_str(pretty=True)
        atom = _with_atom_entry_links(atom, [item])
        found = (_cut(rss, RSS_ITEMS, RSS_END), _cut(atom, ATOM_ENTRIES, ATOM_END))
        cache[key] = found
        while len(cache) > max(64, CACHED_WINDOWS * self.context.settings.feeds.items):
            cache.popitem(last=False)
        return found

    @property
    def _rendered(self) -> OrderedDict[bytes, tuple[bytes, bytes]]:
        cache: OrderedDict[bytes, tuple[bytes, bytes]] | None = getattr(self, "_cache", None)
        if cache is None:
            cache = OrderedDict()
            self._cache = cache
        return cache

    def _with_rss_hub(self, rss: bytes) -> bytes:
        return with_hub_link(rss, self.context.settings.feeds.hub_url)

    def _generator(
        self, items: list[FeedItem], built_at: datetime, self_url: str, updated: datetime
    ) -> FeedGenerator:
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
        fg.updated(updated)
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


def _item_key(item: FeedItem) -> bytes:
    """An item's identity for the cache: everything its rendering reads."""
    text = json.dumps([item.payload, item.updated.isoformat()], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).digest()


def _cut(document: bytes, start: bytes, end: bytes) -> bytes:
    """The one item of a one-item document, with the indentation and line end it has
    among others."""
    return document[document.index(start) : document.rindex(end)]


def _splice(head: bytes, end: bytes, fragments: list[bytes]) -> bytes:
    """A document rendered without items, with the items put back before its end tag."""
    at = head.rindex(end)
    return b"".join([head[:at], *fragments, head[at:]])


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
