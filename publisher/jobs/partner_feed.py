"""Reading a partner's feed: RSS and Atom with feedparser, JSON Feed by hand, each
item reduced to what ingestion compares (its guid and normalized link) and what
it publishes. Pure: no I/O, so a hostile or malformed feed costs only parsing.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from publisher.domain import html as htmlkit
from publisher.domain import validchars
from publisher.domain.errors import PublisherError

MAX_GUID_CHARS = 512


class IngestError(PublisherError):
    """The feed could not be fetched or read; the next poll tries again."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


# ---- links -------------------------------------------------------------------------------


def normalize_link(url: str) -> str:
    """The form two links to the same story share.

    Scheme and host lowercased, the default port dropped, no fragment, no
    `utm_*` tracking parameters (the others keep their order), no trailing
    slash. `HTTPS://News.Example.org:443/a/?utm_source=x&id=3#top` →
    `https://news.example.org/a?id=3`.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a bad port or IPv6 bracket: the link is its own key
        return validchars.scrub(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
         if not k.lower().startswith("utm_")]
    )  # fmt: skip
    path = parts.path.rstrip("/")
    return validchars.scrub(urlunsplit((scheme, host, path, query, "")))


def link_key(link: str, guid: str) -> str:
    """sha256 of the normalized link; an item without a link is keyed by its guid only."""
    basis = normalize_link(link) if link else "\0guid:" + guid
    return hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()


# ---- reading a feed ----------------------------------------------------------------------


@dataclass(frozen=True)
class FeedItem:
    """One entry of a partner feed, as read; nothing in it is trusted yet."""

    guid: str
    link: str
    title: str | None = None
    body_html: str | None = None
    summary: str | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    image: str | None = None
    published: datetime | None = None
    position: int = 0

    @property
    def key(self) -> str:
        return link_key(self.link, self.guid)


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    language: str | None
    items: list[FeedItem]


def parse_feed(body: bytes, content_type: str = "", base_url: str = "") -> ParsedFeed:
    """RSS 2.0, Atom 1.0 or JSON Feed 1.x; `IngestError` if it is none of them."""
    head = body.lstrip()[:1]
    if "json" in content_type.lower() or head in (b"{", b"["):
        return _parse_json_feed(body, base_url)
    return _parse_xml_feed(body, content_type, base_url)


def _parse_json_feed(body: bytes, base_url: str) -> ParsedFeed:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(f"not a JSON Feed: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise IngestError("not a JSON Feed: no items list")
    items = []
    for position, raw in enumerate(data["items"]):
        if not isinstance(raw, dict):
            continue
        link = _str(raw.get("url")) or _str(raw.get("external_url")) or ""
        link = _joined(base_url, link) if link else ""
        guid_value = raw.get("id")
        guid = str(guid_value).strip() if isinstance(guid_value, str | int) else ""
        content_html = _str(raw.get("content_html"))
        content_text = _str(raw.get("content_text"))
        authors = raw.get("authors") or (
            [raw["author"]] if isinstance(raw.get("author"), dict) else []
        )
        names = [a.get("name") for a in authors if isinstance(a, dict) and _str(a.get("name"))]
        items.append(
            _item(
                guid=guid,
                link=link,
                title=_str(raw.get("title")),
                body_html=content_html or (text_to_html(content_text) if content_text else None),
                summary=_str(raw.get("summary")),
                author=", ".join(str(n) for n in names) or None,
                tags=[t for t in raw.get("tags") or [] if isinstance(t, str)],
                image=_str(raw.get("image")) or _str(raw.get("banner_image")),
                published=_iso_time(raw.get("date_published") or raw.get("date_modified")),
                position=position,
            )
        )
    language = _str(data.get("language"))
    return ParsedFeed(_str(data.get("title")), language, items)


def _parse_xml_feed(body: bytes, content_type: str, base_url: str) -> ParsedFeed:
    import feedparser  # imported here: only ingestion needs it

    headers = {"content-location": base_url, "content-type": content_type or "application/xml"}
    parsed = feedparser.parse(body, response_headers=headers)
    if not parsed.entries and not parsed.feed.get("title"):
        reason = parsed.get("bozo_exception") or "no RSS, Atom or JSON Feed document"
        raise IngestError(f"not a feed: {reason}")
    items = []
    for position, entry in enumerate(parsed.entries):
        content = entry.get("content") or []
        body_html = _str(content[0].get("value")) if content else None
        summary = _str(entry.get("summary"))
        if body_html is None:
            body_html, summary = summary, None
        items.append(
            _item(
                guid=_str(entry.get("id")) or "",
                link=_str(entry.get("link")) or "",
                title=_str(entry.get("title")),
                body_html=body_html,
                summary=htmlkit.to_text(summary) if summary else None,
                author=_str(entry.get("author")),
                tags=[t.get("term") for t in entry.get("tags") or [] if _str(t.get("term"))],
                image=_entry_image(entry),
                published=_struct_time(
                    entry.get("published_parsed") or entry.get("updated_parsed")
                ),
                position=position,
            )
        )
    feed = parsed.feed
    return ParsedFeed(_str(feed.get("title")), _str(feed.get("language")), items)


def _item(*, guid: str, link: str, **fields: Any) -> FeedItem:
    """The item, its guid made storable: a partner's guid is an identity, so
    characters no database or XML can hold become U+FFFD (its content is
    judged, and refused, by the article rules instead)."""
    guid = validchars.scrub(guid)
    link = link.strip()
    if not link and guid.startswith(("http://", "https://")):
        link = guid
    if not guid:  # RSS makes guid optional: the link, else the content, identifies the item
        basis = (
            normalize_link(link) if link else f"{fields.get('title')}\0{fields.get('body_html')}"
        )
        guid = "sha256:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()
    elif len(guid) > MAX_GUID_CHARS:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    fields["tags"] = tuple(str(t) for t in fields.get("tags") or ())
    return FeedItem(guid=guid, link=link, **fields)


def _entry_image(entry: Mapping[str, Any]) -> str | None:
    for thumb in entry.get("media_thumbnail") or []:
        if _str(thumb.get("url")):
            return str(thumb["url"])
    for media in entry.get("media_content") or []:
        kind = str(media.get("type") or "")
        if (media.get("medium") == "image" or kind.startswith("image/")) and media.get("url"):
            return str(media["url"])
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type") or "").startswith("image/"):
            return _str(link.get("href"))
    return None


def _joined(base_url: str, link: str) -> str:
    """`link` resolved against the feed's URL; as given if it cannot be parsed
    (the article rules then refuse it, as that item's problem only)."""
    try:
        return urljoin(base_url, link)
    except ValueError:
        return link


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError):
        return None
