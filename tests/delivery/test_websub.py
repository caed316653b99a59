"""WebSub: the feeds advertise a hub, and every rebuild pings it.

The end-to-end test runs a real hub and a real subscriber (flask-websub) on
loopback: the hub's Celery tasks run on a real worker thread over the test's
Redis prefix, and the hub speaks HTTPS (a trustme CA) because a WebSub
subscriber hands its secret only to an HTTPS hub. The other tests ping a
recording stand-in, to see exactly what a ping carries and when.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import feedparser
import flask
import pytest
import redis
import requests
import trustme
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.exceptions import DuplicateTaskNameWarning
from fastapi import FastAPI, Request, Response
from flask_websub.hub import Hub, SQLite3HubStorage
from flask_websub.subscriber import (
    SQLite3SubscriberStorage,
    SQLite3TempSubscriberStorage,
    Subscriber,
    discover,
)
from werkzeug.serving import make_server

from channels.feed import FeedChannel
from publisher.config.settings import Settings
from publisher.delivery import feeds, websub
from publisher.local.cluster import Stack
from publisher.web.api import create_app
from publisher.worker.runtime import Runtime
from sandbox.server import BackgroundServer, free_port
from tests.conftest import TEST_REDIS_URL, write_matrix
from tests.delivery.test_feeds import FeedSite, story

TOKEN = "websub-desk-token"
SECRET = "s3cret-hub-token"  # in a hub URL: must never reach a log


# -- a recording hub, for what a ping carries -----------------------------------------


@dataclass
class Ping:
    form: dict[str, str]
    live_etag: str | None  # the stored document's ETag when the ping arrived


@dataclass
class PingRecorder:
    """Accepts publish pings like a hub, without fetching anything."""

    site: FeedSite | None = None
    status: int = 202
    delay: float = 0.0
    pings: list[Ping] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hub")
        async def hub(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            live = None
            if self.site is not None:
                document = self.site.store.feed_document(form["hub.topic"].rsplit("/", 1)[-1])
                live = document.etag if document else None
            self.pings.append(Ping(form, live))
            if self.delay:
                await asyncio.sleep(self.delay)
            return Response(status_code=self.status)

        return app


@pytest.fixture
def recorder() -> Iterator[tuple[PingRecorder, str]]:
    hub = PingRecorder()
    with BackgroundServer(hub.app()) as server:
        yield hub, f"{server.url}/hub"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def test_rebuild_pings_the_hub_for_each_document_once_it_is_live(
    make_settings: Callable[..., Settings], recorder: tuple[PingRecorder, str]
) -> None:
    hub, hub_url = recorder
    site = FeedSite(make_settings(feeds={"hub_url": hub_url}))
    hub.site = site
    try:
        site.publish_delivered(story(1))
        built = site.rebuild()
    finally:
        site.store.dispose()

    base = site.settings.public_url + "/feeds/"
    by_topic = {p.form["hub.url"]: p for p in hub.pings}
    assert sorted(by_topic) == sorted(base + name for name in ("rss.xml", "atom.xml", "app.json"))
    for topic, ping in by_topic.items():
        assert ping.form == {"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
        # The hub fetches the topic when pinged: the new document must already be served.
        assert ping.live_etag == etag_of(built[topic.removeprefix(base)])


def test_a_failed_ping_is_logged_without_secrets_and_the_next_rebuild_pings_again(
    make_settings: Callable[..., Settings],
    recorder: tuple[PingRecorder, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="publisher")

    def logged() -> str:  # ours; urllib3's own DEBUG lines quote request paths
        return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("publisher"))

    hub, hub_url = recorder
    down = f"http://desk:{SECRET}@127.0.0.1:{free_port()}/hub?token={SECRET}"
    site = FeedSite(make_settings(channels={"app": {"type": "app_feed"}}, feeds={"hub_url": down}))
    channel = site.channels["app"]
    assert isinstance(channel, FeedChannel)
    try:
        site.publish_delivered(story(1))
        documents = feeds.rebuild_feed(site.settings, site.store, channel).documents  # no raise
        assert site.store.feed_document("app.json") is not None
        assert [d.filename for d in documents] == ["app.json"]
        assert "not reached" in logged() and "127.0.0.1" in logged()
        assert SECRET not in logged()

        hub.status = 500  # reached, but refused
        assert websub.ping_hub(hub_url + f"?token={SECRET}", ["https://x/feeds/app.json"]) == []
        assert "HTTP 500" in logged() and SECRET not in logged()

        hub.status = 202  # back: the next rebuild pings again
        site.publish_delivered(story(2))
        settings = make_settings(channels={"app": {"type": "app_feed"}}, feeds={"hub_url": hub_url})
        feeds.rebuild_feed(settings, site.store, channel)
        assert [p.form["hub.topic"] for p in hub.pings][-1] == channel.feed_url("app.json")
    finally:
        site.store.dispose()


def test_a_stalled_hub_costs_one_bounded_wait(recorder: tuple[PingRecorder, str]) -> None:
    hub, hub_url = recorder
    hub.delay = 2.0
    started = time.monotonic()
    assert websub.ping_hub(hub_url, ["https://x/feeds/rss.xml", "https://x/feeds/atom.xml"],
                           timeout=0.3) == []  # fmt: skip
    assert time.monotonic() - started < 1.5
    assert len(hub.pings) == 1  # gave up on the hub, not topic by topic


def test_no_hub_no_ping() -> None:
    assert websub.ping_hub(None, ["https://x/feeds/rss.xml"]) == []


# -- the Link headers on the feed responses -----------------------------------------


@pytest.mark.parametrize("with_hub", [True, False])
def test_feed_responses_carry_the_websub_link_headers(
    make_settings: Callable[..., Settings],
    recorder: tuple[PingRecorder, str],
    redis_client: redis.Redis,
    redis_prefix: str,
    with_hub: bool,
) -> None:
    hub, hub_url = recorder
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    settings = make_settings(
        feeds={"hub_url": hub_url} if with_hub else {},
        REDIS_URL=TEST_REDIS_URL,
        PUBLISHER_REDIS_PREFIX=prefix,
    )
    runtime = Runtime(settings)
    runtime.store.migrate()
    try:
        with BackgroundServer(create_app(runtime)) as server:
            for name in ("rss.xml", "atom.xml", "app.json"):
                response = requests.get(f"{server.url}/feeds/{name}", timeout=10)
                assert response.status_code == 200
                if not with_hub:
                    assert "Link" not in response.headers
                    continue
                self_url = f"{settings.public_url}/feeds/{name}"
                assert response.links == {
                    "hub": {"url": hub_url, "rel": "hub"},
                    "self": {"url": self_url, "rel": "self"},
                }
                again = requests.get(
                    f"{server.url}/feeds/{name}",
                    headers={"If-None-Match": response.headers["ETag"]},
                    timeout=10,
                )
                assert again.status_code == 304 and again.links == response.links
    finally:
        runtime.close()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)
    # The first read built the documents, and that build pinged the hub.
    expected = {f"{settings.public_url}/feeds/{n}" for n in ("rss.xml", "atom.xml", "app.json")}
    assert {p.form["hub.topic"] for p in hub.pings} == (expected if with_hub else set())


# -- a real hub and a real subscriber --------------------------------------------------


class WsgiServer:
    """A threaded werkzeug server on loopback for a Flask app, HTTPS if given a context."""

    def __init__(self, app: flask.Flask, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WsgiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)


@dataclass
class RealHub:
    url: str
    ca_bundle: Path


@pytest.fixture
def websub_hub(
    tmp_path: Path,
    redis_prefix: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RealHub]:
    """flask-websub's hub at https://127.0.0.1:PORT/hub, its tasks on a Celery worker thread."""
    ca = trustme.CA()
    ca_bundle = tmp_path / "websub-ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    # requests in this process (the subscriber) and in our workers trust the test CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)

    prefix = f"{redis_prefix}websub-{uuid.uuid4().hex[:8]}:"
    celery = Celery("websub-hub", broker=TEST_REDIS_URL, set_as_current=False)
    celery.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    hub = Hub(
        SQLite3HubStorage(str(tmp_path / "hub.db")), celery,
        REQUEST_TIMEOUT=5, BACKOFF_BASE=0.2, MAX_ATTEMPTS=5,
    )  # fmt: skip
    with warnings.catch_warnings():
        # Finalizing adds every shared task this process has seen, ours included; the
        # Runtimes of earlier tests made those names twice. The hub never runs them.
        warnings.simplefilter("ignore", DuplicateTaskNameWarning)
        celery.finalize()
    app = flask.Flask("websub_hub")
    app.config["PUBLISH_SUPPORTED"] = True  # the ping; test-only per flask-websub's docs
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    try:
        with (
            start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING"),
            WsgiServer(app, tls) as server,
        ):
            yield RealHub(f"{server.url}/hub", ca_bundle)
    finally:
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool = False  # flask-websub's own signature check let it through


class Follower:
    """A feed reader's server: flask-websub's subscriber, recording every push."""

    def __init__(self, db: Path) -> None:
        self.subscriber = Subscriber(
            SQLite3SubscriberStorage(str(db)), SQLite3TempSubscriberStorage(str(db))
        )
        self.app = flask.Flask("follower")
        self.app.register_blueprint(self.subscriber.build_blueprint(url_prefix="/callbacks"))
        self.pushes: list[Push] = []
        self.topics: dict[str, str] = {}  # callback id -> topic
        self.confirmed: set[str] = set()
        self.errors: list[str] = []
        self.lock = threading.Lock()

        @self.app.before_request
        def record() -> None:
            if flask.request.method == "POST":
                request = flask.request
                flask.g.push = Push(request.path, dict(request.headers), request.get_data())
                with self.lock:
                    self.pushes.append(flask.g.push)

        def accepted(topic: str, callback_id: str, body: bytes) -> None:
            flask.g.push.accepted = flask.g.push.body == body

        def confirmed(topic: str, callback_id: str, mode: str) -> None:
            with self.lock:
                self.confirmed.add(callback_id)

        def denied(topic: str, callback_id: str, reason: str) -> None:
            with self.lock:
                self.errors.append(f"{topic}: {reason}")

        self.subscriber.add_listener(accepted)
        self.subscriber.add_success_handler(confirmed)
        self.subscriber.add_error_handler(denied)

    def follow(self, page_url: str, url: str, secret: str, timeout: float = 30.0) -> str:
        """Discover the hub from the page, subscribe, wait for the hub's verification."""
        found = discover(page_url, timeout=10)
        with self.app.test_request_context(base_url=url):
            callback_id = str(self.subscriber.subscribe(**found, secret=secret, lease_seconds=3600))
        self.topics[callback_id] = found["topic_url"]
        deadline = time.monotonic() + timeout
        while callback_id not in self.confirmed:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"the hub never verified {found}"
            time.sleep(0.05)
        return callback_id

    def wait_for_push(
        self, callback_id: str, has: Callable[[bytes], bool], timeout: float = 60.0
    ) -> Push:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for push in self.pushes:
                    if push.path.endswith("/" + callback_id) and has(push.body):
                        return push
            time.sleep(0.1)
        raise AssertionError(f"no matching push for {self.topics[callback_id]}: {self.pushes}")


def signed_by(push: Push, secret: str) -> bool:
    algorithm, _, signature = push.headers.get("X-Hub-Signature", "").partition("=")
    if algorithm not in ("sha1", "sha256", "sha384", "sha512"):
        return False
    expected = hmac.new(secret.encode(), push.body, getattr(hashlib, algorithm)).hexdigest()
    return hmac.compare_digest(signature, expected)


def test_publishing_pushes_the_new_feed_through_a_real_hub(
    websub_hub: RealHub, tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    follower = Follower(tmp_path / "follower.db")
    api_url = f"http://127.0.0.1:{free_port()}"
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    channels: dict[str, dict[str, Any]] = {"site": {"type": "rss"}, "app": {"type": "app_feed"}}
    matrix = write_matrix(
        tmp_path / "websub-matrix.toml", channels,
        {"title": "Test Daily", "home_page_url": "https://news.example.org/",
         "hub_url": websub_hub.url},
    )  # fmt: skip
    (tmp_path / "stack").mkdir()
    stack = Stack(
        tmp_path / "stack", channels, redis_url=TEST_REDIS_URL, prefix=prefix,
        env={
            "PUBLISHER_CONFIG": str(matrix),  # the Stack's own matrix has no hub
            "PUBLISHER_PUBLIC_URL": api_url,  # the topic URLs the hub fetches
            "PUBLISHER_API_TOKENS": f"desk:{TOKEN}",
            "REQUESTS_CA_BUNDLE": str(websub_hub.ca_bundle),  # our pings reach the HTTPS hub
        },
    )  # fmt: skip
    api = BackgroundServer(create_app(stack.runtime), port=int(api_url.rsplit(":", 1)[1]))
    try:
        stack.start_worker()
        api.start()
        with WsgiServer(follower.app) as follower_server:
            secret = secrets.token_hex(16)
            rss = follower.follow(f"{api_url}/feeds/rss.xml", follower_server.url, secret)
            app = follower.follow(f"{api_url}/feeds/app.json", follower_server.url, secret)
            assert follower.topics == {
                rss: f"{api_url}/feeds/rss.xml",
                app: f"{api_url}/feeds/app.json",
            }

            title = f"Pushed story {uuid.uuid4().hex[:6]}"
            posted = requests.post(
                f"{api_url}/api/articles",
                json={**story(7), "id": "websub-7", "title": title},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            assert posted.status_code == 202, posted.text

            rss_push = follower.wait_for_push(rss, lambda body: title.encode() in body)
            app_push = follower.wait_for_push(app, lambda body: title.encode() in body)
    finally:
        api.stop()
        stack.close()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)

    for push in (rss_push, app_push):
        assert signed_by(push, secret), push.headers
        assert not signed_by(push, secret + "x")
        assert push.accepted  # the subscriber library agreed
        assert f'<{websub_hub.url}>; rel="hub"' in push.headers["Link"]
    assert app_push.headers["Content-Type"].startswith("application/feed+json")
    assert rss_push.headers["Content-Type"].startswith("application/rss+xml")
    assert [i["title"] for i in json.loads(app_push.body)["items"]] == [title]
    parsed = feedparser.parse(rss_push.body)
    assert not parsed.bozo and [e.title for e in parsed.entries] == [title]
    assert {link.rel: link.href for link in parsed.feed.links}["hub"] == websub_hub.url
    assert all(signed_by(p, secret) for p in follower.pushes)  # nothing unsigned got through
