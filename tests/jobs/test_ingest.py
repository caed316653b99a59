"""Partner feed ingestion: links, parsing, settings, polling a feed served on loopback
(conditional GET, no duplicates, unsorted feeds, changed guids, the first-poll
baseline) on SQLite and PostgreSQL, and end to end through a real worker and beat."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from publisher.config.settings import Settings
from publisher.domain.errors import ConfigError
from publisher.domain.states import State
from publisher.jobs.ingest import Ingestor, PollResult, article_id
from publisher.jobs.partner_feed import IngestError, link_key, normalize_link, parse_feed
from publisher.local.cluster import Stack
from publisher.store.models import ArticleRow
from publisher.worker.periodic import run_periodic
from publisher.worker.runtime import Runtime
from tests.conftest import TEST_REDIS_URL, write_matrix
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

CHANNELS = {"site": {"type": "rss"}, "app": {"type": "app_feed"}}


# ---- a partner's feed on loopback ------------------------------------------------------------


@dataclass
class Partner:
    """A partner's feed server: serves `body` with an ETag and Last-Modified and
    answers 304 to a request whose validators still match; records each request."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    version: int = 0
    modified: datetime = field(default_factory=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    requests: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, body: str, content_type: str | None = None) -> None:
        with self.lock:
            self.body = body.encode()
            self.content_type = content_type or self.content_type
            self.version += 1
            self.modified += timedelta(minutes=1)

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def answer(self, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append(headers)
            if self.fail_next:
                status = self.fail_next.pop(0)
                self.statuses.append(status)
                return status, {}, b"partner down"
            last_modified = format_datetime(self.modified, usegmt=True)
            validators = {"ETag": self.etag, "Last-Modified": last_modified}
            if headers.get("If-None-Match") == self.etag:
                self.statuses.append(304)
                return 304, validators, b""
            self.statuses.append(200)
            return 200, {**validators, "Content-Type": self.content_type}, self.body


@pytest.fixture
def partner() -> Iterator[tuple[Partner, str]]:
    state = Partner()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = state.answer(dict(self.headers))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/feed"
    finally:
        server.shutdown()
        server.server_close()


def rss(*items: dict[str, Any], title: str = "Partner Wire") -> str:
    """An RSS 2.0 document; each item: guid, link, title, date (datetime), body."""
    entries = []
    for item in items:
        parts = [f"<title>{item.get('title', 'Story ' + item['guid'])}</title>"]
        if item.get("link"):
            parts.append(f"<link>{item['link']}</link>")
        if item.get("guid"):
            parts.append(f'<guid isPermaLink="false">{item["guid"]}</guid>')
        if item.get("date"):
            parts.append(f"<pubDate>{format_datetime(item['date'])}</pubDate>")
        body = item.get("body", f"<p>Body of {item.get('guid')}.</p>")
        parts.append(f"<description><![CDATA[{body}]]></description>")
        entries.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://partner.example.com/</link>"
        f"<description>wire</description>{''.join(entries)}</channel></rss>"
    )


def story(n: int, day: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "guid": f"wire-{n}",
        "link": f"https://partner.example.com/news/{n}",
        "title": f"Wire story {n}",
        "date": datetime(2026, 3, day, 8, n % 60, tzinfo=UTC),
        **extra,
    }


# ---- settings and runtime --------------------------------------------------------------------


def write_ingest_matrix(
    path: Path,
    tables: dict[str, dict[str, dict[str, Any]]],
    channels: dict[str, dict[str, Any]] | None = None,
) -> Path:
    write_matrix(path, channels or CHANNELS, {"title": "Test Daily"})
    lines = []
    for kind, named in tables.items():
        for name, table in named.items():
            lines.append(f"[{kind}.{json.dumps(name)}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
            lines.append("")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def load(tmp_path: Path, prefix: str, tables: dict[str, Any], **env: str) -> Settings:
    matrix = write_ingest_matrix(tmp_path / "ingest.toml", tables)
    return Settings.load(
        {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "PUBLISHER_REDIS_PREFIX": prefix,
            "REDIS_URL": TEST_REDIS_URL,
            "PUBLISHER_FETCH_ALLOW": "127.0.0.1",  # the partner's feed server, on loopback
            **env,
        }
    )


@pytest.fixture
def make_runtime(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Runtime]]:
    runtimes: list[Runtime] = []

    def build(feeds: dict[str, dict[str, Any]], database_url: str | None = None) -> Runtime:
        prefix = f"{redis_prefix}ingest-{uuid.uuid4().hex[:8]}:"
        env = {"DATABASE_URL": database_url} if database_url else {}
        runtime = Runtime(load(tmp_path, prefix, {"ingest": feeds}, **env))
        runtime.store.migrate()
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        prefix = runtime.settings.redis_prefix
        runtime.close()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


def articles(runtime: Runtime) -> dict[str, ArticleRow]:
    with runtime.store.session() as session:
        return {row.id: row for row in session.query(ArticleRow)}


# ---- links and parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "normal"),
    [
        (
            "HTTPS://News.Example.ORG/a/b/?utm_source=x&id=3#top",
            "https://news.example.org/a/b?id=3",
        ),
        ("https://news.example.org:443/a/", "https://news.example.org/a"),
        ("http://news.example.org:8080/a", "http://news.example.org:8080/a"),
        ("https://news.example.org/", "https://news.example.org"),
        ("https://n.example/x?b=2&a=1&UTM_Medium=rss", "https://n.example/x?b=2&a=1"),
        ("https://n.example/Path/Case", "https://n.example/Path/Case"),
    ],
)
def test_links_are_normalized(link: str, normal: str) -> None:
    assert normalize_link(link) == normal


def test_items_without_a_link_are_keyed_by_guid_only() -> None:
    assert link_key("", "a") != link_key("", "b")
    assert link_key("https://x.example/1/", "a") == link_key("HTTPS://X.example/1", "b")


def test_rss_atom_and_json_feed_are_read() -> None:
    feed = parse_feed(rss(story(1), story(2, body="<p>Two <script>x()</script></p>")).encode())
    assert feed.title == "Partner Wire"
    assert [(i.guid, i.link, i.title) for i in feed.items] == [
        ("wire-1", "https://partner.example.com/news/1", "Wire story 1"),
        ("wire-2", "https://partner.example.com/news/2", "Wire story 2"),
    ]
    assert feed.items[0].published == datetime(2026, 3, 1, 8, 1, tzinfo=UTC)

    atom = parse_feed(
        b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Wire</title><id>urn:x</id>
<updated>2026-03-01T00:00:00Z</updated>
<entry><id>urn:atom:1</id><title>Atom one</title><link href="/atom/1"/>
<updated>2026-03-01T10:00:00Z</updated><content type="html">&lt;p&gt;Hi&lt;/p&gt;</content>
<summary>Short</summary></entry></feed>""",
        "application/atom+xml",
        "https://atom.example.net/feed.xml",
    )
    (entry,) = atom.items
    assert (entry.guid, entry.link, entry.body_html, entry.summary) == (
        "urn:atom:1", "https://atom.example.net/atom/1", "<p>Hi</p>", "Short",
    )  # fmt: skip

    jf = parse_feed(
        json.dumps({
            "version": "https://jsonfeed.org/version/1.1", "title": "JSON Wire",
            "language": "zh-CN",
            "items": [
                {"id": 7, "url": "/j/7", "title": "Seven", "content_text": "A\n\nB",
                 "date_published": "2026-03-01T09:00:00+08:00", "tags": ["t1"],
                 "image": "https://img.example/7.jpg", "authors": [{"name": "Li"}]},
                {"id": "no-link", "content_html": "<p>x</p>"},
            ],
        }).encode(),
        "application/feed+json",
        "https://json.example.org/feed.json",
    )  # fmt: skip
    seven, no_link = jf.items
    assert (seven.guid, seven.link, seven.body_html) == (
        "7", "https://json.example.org/j/7", "<p>A</p><p>B</p>",
    )  # fmt: skip
    assert seven.published == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert (seven.tags, seven.image, seven.author, jf.language) == (
        ("t1",), "https://img.example/7.jpg", "Li", "zh-CN",
    )  # fmt: skip
    assert no_link.link == ""


def test_something_that_is_not_a_feed_is_an_error() -> None:
    with pytest.raises(IngestError, match="not a"):
        parse_feed(b"<html><body>Hello</body></html>", "text/html")
    with pytest.raises(IngestError, match="JSON Feed"):
        parse_feed(b'{"hello": 1}', "application/json")


# ---- settings ---------------------------------------------------------------------------------


def test_ingest_tables_are_parsed(tmp_path: Path, redis_prefix: str) -> None:
    settings = load(
        tmp_path,
        redis_prefix,
        {
            "ingest": {
                "xinhua": {
                    "url": "https://partner.example.com/rss", "every": 120,
                    "channels": ["site"], "title_prefix": "[Xinhua] ",
                },
                "wire": {"url": "http://127.0.0.1:1/feed.json"},
            }
        },
    )  # fmt: skip
    xinhua, wire = settings.ingest["xinhua"], settings.ingest["wire"]
    assert (xinhua.every, xinhua.channels, xinhua.title_prefix) == (120, ("site",), "[Xinhua] ")
    assert xinhua.actor == "ingest:xinhua"
    assert (wire.every, wire.channels, wire.publish_first_poll) == (300, None, False)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"url": "ftp://partner.example.com/"}, "url"),
        ({}, "url"),
        ({"url": "https://p.example/", "channels": ["nope"]}, "nope"),
        ({"url": "https://p.example/", "every": 0}, "every"),
        ({"url": "https://p.example/", "etag": "x"}, "etag"),
    ],
    ids=["not-http", "no-url", "unknown-channel", "every-zero", "unknown-key"],
)
def test_bad_ingest_tables_are_refused(
    tmp_path: Path, redis_prefix: str, table: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"ingest.wire.*{problem}"):
        load(tmp_path, redis_prefix, {"ingest": {"wire": table}})


def test_a_feed_name_must_fit_in_an_article_id(tmp_path: Path, redis_prefix: str) -> None:
    with pytest.raises(ConfigError, match="name must be"):
        load(tmp_path, redis_prefix, {"ingest": {"a.b": {"url": "https://p.example/"}}})


# ---- polling, on SQLite and PostgreSQL ---------------------------------------------------------


def test_first_poll_is_a_baseline_then_only_new_items_are_published(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str], database_url: str
) -> None:
    server, url = partner
    runtime = make_runtime(
        {"wire": {"url": url, "channels": ["site"], "title_prefix": "[Wire] "}}, database_url
    )
    ingestor = Ingestor(runtime)
    server.publish(rss(story(2), story(1)))

    first = ingestor.poll("wire")
    assert (first.outcome, first.baseline, first.published) == ("ok", 2, [])
    assert articles(runtime) == {}  # the back catalogue does not flood the channels

    second = ingestor.poll("wire")  # unchanged: the partner answers 304, nothing is read
    assert (second.outcome, second.http_status) == ("not-modified", 304)
    assert server.requests[-1]["If-None-Match"] == '"v1"'
    assert "If-Modified-Since" in server.requests[-1]
    assert server.statuses == [200, 304]

    # The partner adds story 3 and story 0, older than everything, in the middle:
    # a feed not sorted by date loses nothing, because every seen item is remembered.
    server.publish(rss(story(3, day=2), story(2), story(0, day=1), story(1)))
    third = ingestor.poll("wire")
    ids = [article_id("wire", item) for item in parse_feed(server.body).items]
    assert (third.outcome, third.known, third.baseline) == ("ok", 2, 0)
    assert third.published == [ids[2], ids[0]]  # oldest first
    rows = articles(runtime)
    assert set(rows) == {ids[0], ids[2]}
    assert {row.actor for row in rows.values()} == {"ingest:wire"}
    _, article, deliveries = runtime.store.article(ids[0])
    assert article.title == "[Wire] Wire story 3"
    assert article.source == "Partner Wire" and article.url.endswith("/news/3")
    assert [(d.channel, d.state) for d in deliveries] == [("site", State.PENDING)]

    # Polled again with the same document (the validator was lost): still nothing new.
    server.version += 1
    again = ingestor.poll("wire")
    assert (again.outcome, again.published, again.known) == ("ok", [], 4)
    assert len(articles(runtime)) == 2
    assert {s.outcome for s in ingestor.seen("wire")} == {"baseline", "published"}


def test_a_changed_guid_for_the_same_story_is_not_a_new_article(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str], database_url: str
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url, "publish_first_poll": True}}, database_url)
    ingestor = Ingestor(runtime)
    server.publish(rss(story(1)))
    assert len(ingestor.poll("wire").published) == 1

    # The partner's CMS re-issues the story with a new guid and a tracking-decorated link.
    moved = story(1, guid="wire-1-v2", link="HTTPS://Partner.Example.com/news/1/?utm_source=rss#c")
    server.publish(rss(moved, story(2)))
    result = ingestor.poll("wire")
    assert (result.duplicates, len(result.published)) == (1, 1)
    assert len(articles(runtime)) == 2
    seen = {s.guid: s for s in ingestor.seen("wire")}
    assert seen["wire-1-v2"].outcome == "duplicate"
    assert seen["wire-1-v2"].article_id == seen["wire-1"].article_id
    assert seen["wire-1"].link == "https://partner.example.com/news/1"

    # An item that drops out of the feed and comes back is still known.
    server.publish(rss(story(2)))
    ingestor.poll("wire")
    server.publish(rss(story(1), story(2)))
    assert ingestor.poll("wire").published == []


# ---- polling details (SQLite) ------------------------------------------------------------------


def test_the_first_poll_publishes_when_asked_and_items_are_sanitized(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str]
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url, "publish_first_poll": True, "tags": ["partner"]}})
    body = '<p onclick="x()">Hello <script>alert(1)</script><b>world</b></p>'
    server.publish(rss(story(1, body=body), story(2)))
    result = Ingestor(runtime).poll("wire")
    assert len(result.published) == 2
    _, article, deliveries = runtime.store.article(result.published[0])
    assert "script" not in article.body_html and "onclick" not in article.body_html
    assert "<b>world</b>" in article.body_html
    assert article.tags == ("partner",)
    assert {d.channel for d in deliveries} == {"site", "app"}  # no `channels`: all of them


def test_items_that_cannot_be_articles_are_remembered_as_rejected(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str]
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url, "publish_first_poll": True}})
    ingestor = Ingestor(runtime)
    no_link = {"guid": "nolink", "title": "No link", "body": "<p>x</p>"}
    empty = story(5, body="<script>only()</script>", title="")
    server.publish(rss(no_link, empty, story(6)))
    result = ingestor.poll("wire")
    assert len(result.published) == 1
    assert sorted(result.rejected) == ["nolink", "wire-5"]
    notes = {s.guid: s.note for s in ingestor.seen("wire") if s.outcome == "rejected"}
    assert "url" in (notes["nolink"] or "")
    server.publish(rss(no_link, empty, story(6), story(7)))
    again = ingestor.poll("wire")
    assert (again.rejected, again.known, len(again.published)) == ([], 3, 1)


def test_a_failing_partner_is_retried_at_the_next_poll(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str]
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url}})
    ingestor = Ingestor(runtime)
    server.publish(rss(story(1)))
    ingestor.poll("wire")
    server.publish(rss(story(1), story(2)))
    server.fail_next.append(503)
    failed = ingestor.poll("wire")
    assert (failed.outcome, failed.http_status) == ("error", 503)
    state = ingestor.feed_state("wire")
    assert state is not None and state.last_status == 503 and state.etag == '"v1"'
    assert len(ingestor.poll("wire").published) == 1


def test_a_new_feed_url_takes_a_new_baseline(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str], tmp_path: Path
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url}})
    server.publish(rss(story(1)))
    Ingestor(runtime).poll("wire")
    moved = make_runtime(
        {"wire": {"url": url + "?v=2"}}, f"sqlite:///{tmp_path / 'var' / 'publisher.db'}"
    )
    server.publish(rss(story(1), story(2), story(3)))
    result = Ingestor(moved).poll("wire")
    assert (result.baseline, result.published) == (2, [])
    assert "If-None-Match" not in server.requests[-1]


def test_a_poll_in_progress_is_not_started_twice(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str]
) -> None:
    _, url = partner
    runtime = make_runtime({"wire": {"url": url}})
    runtime.redis.set(runtime.settings.key("ingest", "wire", "lock"), "someone", ex=30)
    assert Ingestor(runtime).poll("wire") == PollResult("wire", "busy")


def test_feeds_are_claimed_once_per_interval_and_polled_from_the_tick(
    make_runtime: Callable[..., Runtime], partner: tuple[Partner, str], redis_client: redis.Redis
) -> None:
    _, url = partner
    runtime = make_runtime({"wire": {"url": url, "every": 60}, "other": {"url": url, "every": 600}})
    ingestor = Ingestor(runtime)
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert sorted(ingestor.claim_due(t0)) == ["other", "wire"]
    assert ingestor.claim_due(t0 + timedelta(seconds=30)) == []
    assert ingestor.claim_due(t0 + timedelta(seconds=60)) == ["wire"]
    queue = f"{runtime.settings.redis_prefix}celery:control"
    before = redis_client.llen(queue)
    assert run_periodic(runtime, t0 + timedelta(seconds=601))["polls"] == ["wire", "other"]
    assert redis_client.llen(queue) == before + 2  # one `publisher.ingest` task per feed


# ---- end to end: beat → tick → ingest task → article → delivered to the feed -------------------


def test_a_partner_story_reaches_the_site_feed_through_worker_and_beat(
    make_stack: Callable[..., Stack],  # noqa: F811
    partner: tuple[Partner, str],
    tmp_path: Path,
) -> None:
    server, url = partner
    server.publish(rss(story(1)))
    matrix = write_ingest_matrix(
        tmp_path / "e2e.toml",
        {"ingest": {"wire": {"url": url, "every": 1, "channels": ["site"]}}},
        channels={"site": {"type": "rss"}},
    )
    stack = make_stack(
        {"site": {"type": "rss"}}, PUBLISHER_CONFIG=str(matrix), PUBLISHER_FETCH_ALLOW="127.0.0.1"
    )
    stack.start_worker()
    ingestor = Ingestor(stack.runtime)
    stack.wait_until(lambda: bool(ingestor.seen("wire")), timeout=60)  # the baseline
    server.publish(rss(story(2), story(1)))
    (item,) = [i for i in parse_feed(server.body).items if i.guid == "wire-2"]
    new_id = article_id("wire", item)
    stack.wait_until(lambda: stack.settled([new_id]), timeout=60)
    (delivery,) = stack.runtime.store.deliveries(article_ids=[new_id])
    assert delivery.state == State.DELIVERED and delivery.channel == "site"
    assert len(articles(stack.runtime)) == 1
    stack.wait_until(lambda: 304 in server.statuses, timeout=30)  # later polls are conditional
    assert len(articles(stack.runtime)) == 1
