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

import html
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from publisher.config.jobs import IngestConfig
from publisher.domain import html as htmlkit
from publisher.domain.article import LANGUAGE_PATTERN, Article, parse_article
from publisher.domain.errors import ConfigError, InputError, PermanentError
from publisher.domain.text import cut
from publisher.jobs.partner_feed import (
    FeedItem,
    IngestError,
    ParsedFeed,
    normalize_link,
    parse_feed,
    text_to_html,
)
from publisher.jobs.ports import JobContext
from publisher.net.guard import Allowlist, PublicSession
from publisher.net.reading import ReadProblem, TooLarge, read_capped
from publisher.store.models import IngestFeedRow, SeenItemRow

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 10 * 1024 * 1024
USER_AGENT = "publisher-ingest/0.1 (partner feed poller)"
ACCEPT = (
    "application/feed+json, application/json;q=0.9, application/atom+xml, "
    "application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


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
    body = item.body_html or (text_to_html(item.summary) if item.summary else None)
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
