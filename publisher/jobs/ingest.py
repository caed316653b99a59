"""Partner feed ingestion: poll `[ingest.NAME]` feeds, turn new items into articles.

A feed is fetched with a conditional GET (`If-None-Match` / `If-Modified-Since`
from the last answer), parsed (RSS and Atom with feedparser, JSON Feed by
hand), and each item is looked up by its guid *and* its normalized link in
`seen_items`, which remembers every item ever read, so an unsorted feed, an
item that drops out and comes back, or a partner that changes an item's
guid never yields a duplicate and never hides a new item.

A new item becomes an article through `parse_article` (so it is validated
and sanitized like an editor's) with the id `ingest-<feed>-<hash of link>`
and is published with `Runtime.publish` as the actor `ingest:<feed>`. It is
marked seen after it was published: a crash in between re-publishes the
same id with the same content, which the store turns into nothing.

The first poll of a feed (or of a feed whose URL changed) only records what
the feed holds, unless `publish_first_poll = true`, so adding a partner does
not flood every channel with its back catalogue.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from publisher.config.jobs import IngestConfig
from publisher.domain import html as htmlkit
from publisher.domain import validchars
from publisher.domain.article import LANGUAGE_PATTERN, Article, parse_article
from publisher.domain.errors import ConfigError, InputError, PermanentError, PublisherError
from publisher.domain.text import cut
from publisher.jobs.ports import JobContext
from publisher.net.guard import Allowlist, PublicSession
from publisher.net.reading import ReadProblem, TooLarge, read_capped
from publisher.store.models import IngestFeedRow, SeenItemRow

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_GUID_CHARS = 512
USER_AGENT = "publisher-ingest/0.1 (partner feed poller)"
ACCEPT = (
    "application/feed+json, application/json;q=0.9, application/atom+xml, "
    "application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


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
                body_html=content_html or (_text_to_html(content_text) if content_text else None),
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


def _text_to_html(text: str) -> str:
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


# ---- fetching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 when the validators still match
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None


def fetch(
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    timeout: float,
    allow: Allowlist | None = None,
) -> Fetched:
    """GET the partner's feed through the fetch guard (a partner's URL, or its
    redirects, may point anywhere): public addresses only, unless `allow`."""
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout  # for the whole answer, not each read
    try:
        with (
            PublicSession(allow or Allowlist()) as session,
            session.get(url, headers=headers, timeout=timeout, stream=True) as response,
        ):
            if response.status_code == 304:
                return Fetched(304, etag=etag, last_modified=last_modified)
            if response.status_code != 200:
                raise IngestError(
                    f"HTTP {response.status_code} from the feed", http_status=response.status_code
                )
            try:
                body = read_capped(response, max_bytes=MAX_FEED_BYTES, deadline=deadline)
            except TooLarge:
                raise IngestError(f"the feed is larger than {MAX_FEED_BYTES:,} bytes") from None
            except ReadProblem:
                raise IngestError(f"the feed was not read within {timeout:g}s") from None
            return Fetched(
                200,
                body,
                response.headers.get("Content-Type", ""),
                _header(response.headers.get("ETag"), 512),
                _header(response.headers.get("Last-Modified"), 64),
            )
    except requests.RequestException as exc:
        raise IngestError(f"cannot fetch the feed: {type(exc).__name__}") from None
    except PermanentError as exc:  # the guard refused the address or a redirect
        raise IngestError(exc.reason) from None


def _header(value: str | None, limit: int) -> str | None:
    return value if value and len(value) <= limit else None


# ---- items to articles -------------------------------------------------------------------


def article_id(feed: str, item: FeedItem) -> str:
    return f"ingest-{feed}-{item.key[:16]}"


def build_article(config: IngestConfig, item: FeedItem, feed: ParsedFeed) -> Article:
    """The article a new item becomes; `InputError` if the item cannot be one."""
    title = _clean(item.title, 300) or _clean(htmlkit.to_text(item.body_html or ""), 120)
    if title and config.title_prefix:
        title = cut(config.title_prefix + title, 300, measure=len)
    body = item.body_html or (_text_to_html(item.summary) if item.summary else None)
    body = htmlkit.strip_controls(body) if body else body  # partners' stray C0 bytes, as before
    if body is None and title:
        body = f"<p>{html.escape(title)}</p>"
    tags = [t for t in (_clean(t, 50) for t in (*config.tags, *item.tags)) if t][:30]
    language = feed.language if feed.language and LANGUAGE_PATTERN.match(feed.language) else None
    image = item.image if item.image and item.image.startswith(("http://", "https://")) else None
    data: dict[str, Any] = {
        "id": article_id(config.name, item),
        "url": item.link,
        "title": title,
        "body_html": body,
        "summary": _clean(item.summary, 1000),
        "author": _clean(item.author, 200),
        "source": config.source or _clean(feed.title, 200),
        "tags": tags,
        "cover_image": image if image and len(image) <= 2000 else None,
        "language": language,
        "published_at": item.published,
        "channels": list(config.channels) if config.channels else None,
    }
    return parse_article({k: v for k, v in data.items() if v not in (None, "", [])})


def _buildable(config: IngestConfig, item: FeedItem, feed: ParsedFeed) -> Article:
    """`build_article`, where anything an item makes go wrong is that item's
    rejection (an `InputError`), never the end of the poll for the others."""
    try:
        return build_article(config, item, feed)
    except InputError:
        raise
    except Exception as exc:  # a partner's data found a case the rules did not expect
        log.exception("ingest %s: item %s could not be read", config.name, item.guid)
        raise InputError("item", f"cannot be read as an article ({type(exc).__name__})") from None


def _clean(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    text = " ".join(htmlkit.strip_controls(text).split())
    return cut(text, limit, measure=len) if text else None


# ---- polling -----------------------------------------------------------------------------


@dataclass
class PollResult:
    feed: str
    outcome: str  # "ok", "not-modified", "busy", "error"
    http_status: int | None = None
    published: list[str] = field(default_factory=list)
    baseline: int = 0  # recorded without publishing (first poll)
    duplicates: int = 0  # a new guid for a link already seen
    known: int = 0
    rejected: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "feed": self.feed, "outcome": self.outcome, "http_status": self.http_status,
            "published": self.published, "baseline": self.baseline,
            "duplicates": self.duplicates, "known": self.known, "rejected": self.rejected,
            "error": self.error,
        }  # fmt: skip


@dataclass(frozen=True)
class _FeedState:
    url: str | None
    etag: str | None
    last_modified: str | None
    first_polled_at: datetime | None


class Ingestor:
    """Polls the configured partner feeds through one process's `Runtime`."""

    def __init__(self, runtime: JobContext) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.store = runtime.store

    def config(self, name: str) -> IngestConfig:
        try:
            return self.settings.ingest[name]
        except KeyError:
            raise ConfigError(f"unknown ingest feed {name!r}") from None

    def claim_due(self, now: datetime | None = None) -> list[str]:
        """Feeds due for a poll, each moved to its next slot; claimed by one caller only."""
        now = now or datetime.now(UTC)
        return [
            name
            for name, config in self.settings.ingest.items()
            if self.store.claim_ingest_poll(name, config.every, now)
        ]

    def poll(self, name: str, *, now: datetime | None = None) -> PollResult:
        """Fetch one feed and publish its new items; never raises for a bad feed."""
        config = self.config(name)
        lock_key = self.settings.key("ingest", name, "lock")
        token = secrets.token_hex(8)
        if not self.runtime.redis.set(lock_key, token, nx=True, ex=int(config.timeout * 4) + 60):
            return PollResult(name, "busy")
        try:
            return self._poll(config, now or datetime.now(UTC))
        finally:
            # Only our own lock: a poll that outlived it must not free its successor's.
            self.runtime.redis.eval(_RELEASE, 1, lock_key, token)

    def _poll(self, config: IngestConfig, now: datetime) -> PollResult:
        state = self._state(config.name, now)
        moved = state.url is not None and state.url != config.url
        first = state.first_polled_at is None or moved
        try:
            fetched = fetch(
                config.url,
                etag=None if moved else state.etag,
                last_modified=None if moved else state.last_modified,
                timeout=config.timeout,
                allow=Allowlist.of(self.settings.fetch_allow),
            )
            if fetched.status == 304:
                self._record(config.name, now, status=304)
                return PollResult(config.name, "not-modified", http_status=304)
            feed = parse_feed(fetched.body, fetched.content_type, config.url)
        except IngestError as exc:
            log.warning("ingest %s: %s", config.name, exc)
            self._record(config.name, now, status=exc.http_status, error=str(exc))
            return PollResult(config.name, "error", http_status=exc.http_status, error=str(exc))
        result = PollResult(config.name, "ok", http_status=200)
        self._take(config, feed, baseline=first and not config.publish_first_poll, result=result)
        # Validators are kept only once every item was handled: a crash before
        # this line makes the next poll read the whole feed again, harmlessly.
        self._record(
            config.name, now, status=200, url=config.url,
            etag=fetched.etag, last_modified=fetched.last_modified, first=first,
        )  # fmt: skip
        if result.published or result.rejected:
            log.info(
                "ingest %s: %d published, %d rejected",
                config.name, len(result.published), len(result.rejected),
            )  # fmt: skip
        return result

    def _take(
        self, config: IngestConfig, feed: ParsedFeed, *, baseline: bool, result: PollResult
    ) -> None:
        items = _oldest_first(feed.items)
        guids = [i.guid for i in items]
        keys = [i.key for i in items]
        known_guids, known_links = self.store.known_items(config.name, guids, keys)
        for item in items:
            if item.guid in known_guids:
                result.known += 1
                continue
            known_guids.add(item.guid)
            if item.key in known_links:
                self._remember(config.name, item, "duplicate", known_links[item.key])
                result.duplicates += 1
                continue
            if baseline:
                self._remember(config.name, item, "baseline", None)
                known_links[item.key] = None
                result.baseline += 1
                continue
            try:
                article = _buildable(config, item, feed)
                self.runtime.publish(article, actor=config.actor)
            except InputError as exc:
                log.warning("ingest %s: item %s rejected: %s", config.name, item.guid, exc)
                self._remember(config.name, item, "rejected", None, note=str(exc))
                known_links[item.key] = None
                result.rejected.append(item.guid)
                continue
            self._remember(config.name, item, "published", article.id)
            known_links[item.key] = article.id
            result.published.append(article.id)

    # -- the feed's row and the seen items ------------------------------------------------

    def _state(self, name: str, now: datetime) -> _FeedState:
        row = self.store.ingest_feed(name, now)
        return _FeedState(row.url, row.etag, row.last_modified, row.first_polled_at)

    def _record(
        self,
        name: str,
        now: datetime,
        *,
        status: int | None,
        error: str | None = None,
        url: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        first: bool = False,
    ) -> None:
        values: dict[str, Any] = {
            "last_polled_at": now, "last_status": status, "last_error": error, "updated_at": now,
        }  # fmt: skip
        if url is not None:  # a successful read: its validators replace the old ones
            values.update(url=url, etag=etag, last_modified=last_modified)
        if first:
            values["first_polled_at"] = now
        self.store.record_poll(name, **values)

    def _remember(
        self,
        feed: str,
        item: FeedItem,
        outcome: str,
        article: str | None,
        *,
        note: str | None = None,
    ) -> None:
        self.store.remember_item(
            feed, guid=item.guid, link=normalize_link(item.link) if item.link else "",
            link_hash=item.key, outcome=outcome, article_id=article, note=note,
        )  # fmt: skip

    def seen(self, feed: str) -> list[SeenItemRow]:
        return self.store.seen_items(feed)

    def feed_state(self, feed: str) -> IngestFeedRow | None:
        return self.store.ingest_feed_state(feed)


def _oldest_first(items: Iterable[FeedItem]) -> list[FeedItem]:
    """Dated items by date, then undated ones in reverse document order (feeds list
    the newest first), so channels receive a batch in the order it was written."""
    return sorted(
        items,
        key=lambda i: (
            (0, i.published, 0)
            if i.published
            else (1, datetime.min.replace(tzinfo=UTC), -i.position)
        ),
    )
