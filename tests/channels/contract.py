"""The channel contract harness: one set of shared tests, one table per channel type.

Every channel type keeps the same promises, so they are tested once, by
`tests/channels/test_contract.py`, on the rows each type's table lists
(`tests/channels/tables/<type>.py`, found without being listed anywhere):

- `format` is pure and deterministic: the same article gives the same
  payload twice, it is JSON, and no socket is opened while it is made;
- each transport fault maps to the right class from `publisher.domain.errors`:
  the harness runs a real HTTP server on loopback (`ScriptedPlatform`) that
  answers the platform's happy path and, for one row, the fault (a timeout,
  429 with Retry-After, 5xx, the platform's auth and content codes, a body
  that is not JSON or lacks a field); connection refused is a port nobody
  listens on;
- no secret configured for the channel (or issued by the platform) is in
  any reason or log line;
- over-long input is cut by the channel's own rule (`Channel.text_limits`),
  in the payload and in what actually reaches the platform.

Feed types have no transport: their rows test the formatter and the
documents they render. The per-channel test files use the same pieces
(`ScriptedPlatform`, `ChannelFactory`, `offline_channel`, `attempt`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from channels import CHANNEL_TYPES, build_channel
from channels.base import Channel, ChannelContext, SendAttempt
from channels.feed import FeedChannel, FeedDocument
from publisher.config.settings import BUILTIN_CONFIG, ChannelConfig, Settings
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import DeliveryError

# ---- the platform stand-in -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: JSON (`json`), raw bytes (`raw`, e.g. a proxy's HTML page), or
    nothing; sent after `delay` seconds (longer than the client's timeout: no answer)."""

    status: int = 200
    json: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.json is None else json.dumps(self.json).encode()


@dataclass(frozen=True)
class Seen:
    """A request the platform received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class ScriptedPlatform:
    """A real HTTP server on 127.0.0.1 that answers each path as the test scripts it.

    `routes` are the standing answers (the happy path); `fault(path, answer)`
    queues a one-shot answer that wins over the route once. An unknown path
    answers 404. Every request is kept in `seen`, in order.
    """

    def __init__(self, routes: Mapping[str, Answer] | None = None) -> None:
        self.routes: dict[str, Answer] = dict(routes or {})
        self.queued: dict[str, list[Answer]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll: shutdown() waits for it, and every test stops its own server.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fault(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self.queued.setdefault(path, []).extend(answers)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def reset(self, routes: Mapping[str, Answer] | None = None) -> None:
        with self._lock:
            self.routes = dict(routes or {})
            self.queued.clear()
            self.seen.clear()

    def answer_for(self, seen: Seen) -> Answer:
        with self._lock:
            self.seen.append(seen)
            queue = self.queued.get(seen.path)
            if queue:
                return queue.pop(0)
            return self.routes.get(seen.path, Answer(404, {"error": "no such route"}))

    def __enter__(self) -> ScriptedPlatform:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(platform: ScriptedPlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                dict(self.headers.items()),
                self.rfile.read(length) if length else b"",
            )
            answer = platform.answer_for(seen)
            if answer.delay:
                time.sleep(answer.delay)
            body = answer.body()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: that was the point

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads `seen`, not the access log."""

    return Handler


# ---- building channels -----------------------------------------------------------------------


def attempt(number: int = 1, key: str = "idem-key-1", **fields: Any) -> SendAttempt:
    """A `SendAttempt` as the engine makes it (checkpoint kept in the attempt)."""
    return SendAttempt(delivery_id=1, number=number, idempotency_key=key, **fields)


def offline_channel(type_name: str, name: str | None = None, **options: Any) -> Channel:
    """A channel with no Redis and no network: what `publisher preview` builds."""
    settings = Settings.load({"PUBLISHER_CONFIG": str(BUILTIN_CONFIG)})
    config = ChannelConfig(name=name or type_name, type=type_name, **options)
    return CHANNEL_TYPES[type_name](config, ChannelContext(settings=settings))


@dataclass
class ChannelFactory:
    """Channels from real settings (a matrix file), secrets in the environment, real Redis."""

    make_settings: Callable[..., Settings]
    redis: redis.Redis
    prefix: str
    monkeypatch: pytest.MonkeyPatch

    def __call__(
        self,
        type_name: str,
        *,
        name: str = "ch",
        env: Mapping[str, str] | None = None,
        use_redis: bool = True,
        fresh_keys: bool = False,
        **options: Any,
    ) -> Channel:
        """`fresh_keys` gives the channel Redis keys of its own (token caches, buckets)."""
        for variable, value in (env or {}).items():
            self.monkeypatch.setenv(variable, value)
        prefix = f"{self.prefix}{uuid.uuid4().hex[:8]}:" if fresh_keys else self.prefix
        settings = self.make_settings(
            {name: {"type": type_name, **options}},
            PUBLISHER_REDIS_PREFIX=prefix,
            PUBLISHER_FETCH_ALLOW="127.0.0.1",  # the tests' image servers are on loopback
        )
        context = ChannelContext(settings=settings, redis=self.redis if use_redis else None)
        return build_channel(settings.channel(name), context)


@contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any socket connection inside the block fails the test: formatting is pure."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a formatter opened a connection: {args[1:]!r}")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


def field_at(payload: Mapping[str, Any], path: str) -> Any:
    """`payload["a"]["b"]` for "a.b"; list items by index ("articles.0.article")."""
    value: Any = payload
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


BUILT_AT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


# ---- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatRow:
    """An article to format, and payload fields (dotted paths) it must produce."""

    name: str
    article: Callable[[], Article]
    expect: Mapping[str, Any] = field(default_factory=dict)
    #: Channel options for this row only (a transport type's `thread = true`).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: More to hold of the payload than `expect` can say (every part of a thread fits).
    check: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True)
class Fault:
    """One transport fault and what it must raise.

    `answer` is served once at `path`; None means nothing listens at all
    (connection refused). `error` None means the answer is not a failure on
    this platform and the send must return a receipt.
    """

    name: str
    path: str
    answer: Answer | None
    error: type[DeliveryError] | None
    code: str | None = None
    http_status: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class TransportTable:
    """A pushed channel type: its options, secrets, happy path and faults.

    `options` may name `{url}`, the scripted platform's address; `env` is
    what the channel reads from the environment. `secrets` are the values
    (configured or issued by the platform, like an access token) that must
    never be in a reason or in our own log lines. `sent` turns what reached
    the platform into a mapping the channel's `text_limits` apply to (or
    into the fields `long_expect` names).
    """

    type_name: str
    options: Mapping[str, Any]
    env: Mapping[str, str]
    secrets: tuple[str, ...]
    routes: Mapping[str, Answer]
    faults: tuple[Fault, ...]
    formats: tuple[FormatRow, ...]
    long_article: Callable[[], Article]
    sent: Callable[[ScriptedPlatform], Mapping[str, Any]]
    #: For a type without text limits: fields that must arrive whole (dotted path → value).
    long_expect: Callable[[Article], Mapping[str, Any]] | None = None

    def channel(self, build: ChannelFactory, url: str, **overrides: Any) -> Channel:
        options = {
            k: v.format(url=url) if isinstance(v, str) else v for k, v in self.options.items()
        }
        return build(self.type_name, env=self.env, fresh_keys=True, **{**options, **overrides})


@dataclass(frozen=True)
class FeedTable:
    """A feed channel type: its formatter rows and a check of the documents it renders."""

    type_name: str
    formats: tuple[FormatRow, ...]
    long_article: Callable[[], Article]
    #: Checks the rendered documents against the articles they were made from.
    check_documents: Callable[[list[FeedDocument], list[Article]], None]
    options: Mapping[str, Any] = field(default_factory=dict)
    built_at: datetime = BUILT_AT
    #: Asserts the payload carries the whole article: a feed is never cut to a limit.
    carries_whole: Callable[[Mapping[str, Any], Article], None] = field(
        default=lambda post, article: _whole_html(post, article)
    )

    def channel(self, build: ChannelFactory) -> FeedChannel:
        channel = build(self.type_name, use_redis=False, **self.options)
        assert isinstance(channel, FeedChannel)
        return channel


Table = TransportTable | FeedTable


def _whole_html(post: Mapping[str, Any], article: Article) -> None:
    assert (post["title"], post["content_html"]) == (article.title, article.body_html)


# ---- articles the tables share ---------------------------------------------------------------

STORY_URL = "https://news.example.org/2026/11/21/contest.html"


def story(**fields: Any) -> Article:
    """A short Chinese news story that fits every platform as it is."""
    return parse_article(
        {
            "id": "contract-1",
            "url": STORY_URL,
            "title": "全国数字技能大赛决赛开幕",
            "summary": "三百余名职工同台竞技。",
            "body_html": "<p>11月20日，决赛开幕。</p>",
            "author": "记者",
            "tags": ["技能", "职工"],
            "language": "zh-CN",
            **fields,
        }
    )


def long_story() -> Article:
    """Over every limit a platform has: title, author, summary and body, with emoji."""
    return story(
        id="contract-long",
        title="数字技能大赛👨‍👩‍👧" * 25,
        author="特约记者" * 10,
        summary="三百余名职工同台竞技，比赛分为三个赛项。" * 45,
        body_html="<p>" + "第一段的内容讲述了大赛的筹备过程。" * 1500 + "</p>",
    )
