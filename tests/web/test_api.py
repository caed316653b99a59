"""The HTTP API over loopback, against real Celery workers and the machine's Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import redis
import requests

from publisher.domain.states import SETTLED
from publisher.local.cluster import FAST, Stack
from publisher.web.api import DATE_SETTLES_AFTER, create_app
from publisher.worker.runtime import Runtime
from sandbox.server import BackgroundServer, free_port
from tests.conftest import SAMPLES, TEST_REDIS_URL, postgres_schema_url, write_matrix
from tests.support.receiver import Receiver

DESK, CMS = "s3cret-desk-token", "t0ken-for-the-cms"
TOKENS = f"desk:{DESK},cms:{CMS}"
AS_DESK = {"Authorization": f"Bearer {DESK}"}
AS_CMS = {"Authorization": f"Bearer {CMS}"}


@dataclass
class Api:
    url: str
    stack: Stack
    receiver: Receiver
    hook_url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", AS_DESK)
        return requests.post(self.url + path, timeout=30, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.delete(self.url + path, timeout=30, **kwargs)

    def wait_settled(self, article_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the API (as an editor's client would) until every delivery settles."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = self.get(f"/api/articles/{article_id}").json()
            if all(d["state"] in SETTLED for d in detail["deliveries"]):
                return dict(detail)
            time.sleep(0.1)
        raise AssertionError(f"{article_id} did not settle: {detail}\n{self.stack.logs()}")


@pytest.fixture
def make_api(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Api]]:
    """An API on loopback over a stack with feeds and a webhook; workers on request."""
    cleanups: list[Callable[[], None]] = []

    def build(
        *,
        worker: bool = True,
        channels: dict[str, Any] | None = None,
        newsroom: dict[str, Any] | None = None,
        **env: str,
    ) -> Api:
        receiver = Receiver()
        hook_server = BackgroundServer(receiver.app()).start()
        cleanups.append(hook_server.stop)
        hook_url = f"{hook_server.url}/hook"
        prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
        root = tmp_path / uuid.uuid4().hex[:6]
        root.mkdir()
        stack = Stack(
            root,
            channels
            or {
                "site": {"type": "rss"},
                "app": {"type": "app_feed"},
                "hook": {"type": "webhook", "base_url": hook_url, "backoff_base": 0.2},
            },
            redis_url=TEST_REDIS_URL,
            prefix=prefix,
            # These tests read as the old open API did; tests/web/test_read_access.py
            # covers what an anonymous reader sees once reads are not open.
            env={"PUBLISHER_API_TOKENS": TOKENS, "PUBLISHER_OPEN_READS": "true", **env},
            newsroom=newsroom,
        )

        def close_stack() -> None:
            stack.close()
            for key in redis_client.scan_iter(match=f"{prefix}*"):
                redis_client.delete(key)

        cleanups.append(close_stack)
        if worker:
            stack.settings.data_dir.mkdir(parents=True, exist_ok=True)  # none yet on PostgreSQL
            stack.start_worker()
        server = BackgroundServer(create_app(stack.runtime)).start()
        cleanups.append(server.stop)
        return Api(server.url, stack, receiver, hook_url)

    yield build
    for cleanup in reversed(cleanups):
        cleanup()


def article(n: int | str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"api-{n}",
        "url": f"https://news.example.org/a{n}",
        "title": f"Story {n}",
        "body_html": f"<p>Body of story {n}.</p>",
        "published_at": "2026-11-20T08:00:00+08:00",
        **fields,
    }


def error_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "problem"}, body
    return dict(body["error"])


# -- publishing -----------------------------------------------------------------


def test_publish_delivers_everywhere_and_reports_each_delivery(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    posted = api.post("/api/articles", json=article(1))
    assert posted.status_code == 202, posted.text
    body = posted.json()
    assert (body["id"], body["version"], body["created"], body["changed"]) == (
        "api-1", 1, True, True,
    )  # fmt: skip
    assert sorted(d["channel"] for d in body["deliveries"]) == ["app", "hook", "site"]

    detail = api.wait_settled("api-1")
    assert detail["actor"] == "desk" and detail["article"]["title"] == "Story 1"
    by_channel = {d["channel"]: d for d in detail["deliveries"]}
    assert {d["state"] for d in by_channel.values()} == {"delivered"}
    hook = by_channel["hook"]
    assert hook["remote_url"] == "https://archive.example.org/1"
    assert hook["next_attempt_at"] is None and hook["last_error"] is None
    assert [(a["number"], a["outcome"]) for a in hook["log"]] == [(1, "delivered")]
    assert by_channel["site"]["remote_url"].endswith("/feeds/rss.xml")

    # the same id and content again creates nothing
    again = api.post("/api/articles", json=article(1), headers=AS_CMS)
    assert again.status_code == 202
    assert (again.json()["version"], again.json()["created"], again.json()["changed"]) == (
        1, False, False,
    )  # fmt: skip
    assert [d["id"] for d in again.json()["deliveries"]] == [d["id"] for d in body["deliveries"]]
    time.sleep(0.5)
    assert len(api.receiver.requests) == 1

    # changed content is an update: a new version, re-sent where the channel updates
    changed = api.post("/api/articles", json=article(1, title="Story 1, corrected"))
    assert (changed.json()["version"], changed.json()["changed"]) == (2, True)
    detail = api.wait_settled("api-1")
    assert detail["version"] == 2
    assert {d["article_version"] for d in detail["deliveries"]} == {2}
    assert [p["title"] for p in api.receiver.posts.values()] == ["Story 1", "Story 1, corrected"]

    def feed_has_update() -> bool:
        feed = feedparser.parse(api.get("/feeds/rss.xml").content)
        return [e.title for e in feed.entries] == ["Story 1, corrected"]

    api.stack.wait_until(feed_has_update, timeout=30)


def test_auth_is_required_for_changes_and_nothing_changes_without_it(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(worker=False)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {DESK}"},
    ):
        response = api.post("/api/articles", json=article(2), headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert error_of(response)["field"] == "Authorization"
        assert "wrong-token" not in response.text and DESK not in response.text
    assert api.get("/api/articles/api-2").status_code == 404
    assert api.get("/api/articles").json()["total"] == 0

    delivery = api.post("/api/articles", json=article(2)).json()["deliveries"][0]
    for path in (f"/api/deliveries/{delivery['id']}/cancel", "/api/deliveries/retry"):
        assert api.post(path, headers={"Authorization": "Bearer nope"}).status_code == 401
    after = api.get(f"/api/deliveries/{delivery['id']}").json()
    assert after["state"] == "pending" and after["log"] == []


def test_bad_bodies_name_the_field_and_store_nothing(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    cases: list[tuple[Any, str]] = [
        ({k: v for k, v in article(3).items() if k != "title"}, "title"),
        (article(3, url="ftp://example.org/x"), "url"),
        (article(3, colour="red"), "colour"),
        (article(3, published_at="2026-11-20T08:00:00"), "published_at"),
        (article(3, channels=["nowhere"]), "channels"),
        (article(3, body_html="<script>alert(1)</script>"), "body_html"),
        (article(3, tags=[""]), "tags[0]"),
        (article(3, id="../etc"), "id"),
        (article(3, cover_image="cover.jpg"), "cover_image"),
        ([article(3)], "body"),
    ]
    for body, field in cases:
        response = api.post("/api/articles", json=body)
        assert response.status_code == 422, (field, response.text)
        assert error_of(response)["field"] == field, response.text
    broken = api.post(
        "/api/articles",
        data=b'{"id": "api-3",',
        headers={**AS_DESK, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422 and error_of(broken)["field"] == "body"
    assert api.get("/api/articles").json()["total"] == 0


def test_oversized_bodies_are_refused(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    huge = article(4, body_html="<p>" + "x" * 4_100_000 + "</p>")
    response = api.post("/api/articles", json=huge)
    assert response.status_code == 413
    assert error_of(response)["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"id": "api-4", "body_html": "'
        for _ in range(50):
            yield b"y" * 100_000
        yield b'"}'

    streamed = api.post(
        "/api/articles", data=chunks(), headers={**AS_DESK, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and error_of(streamed)["field"] == "body"
    assert api.get("/api/articles").json()["total"] == 0


# -- editors' actions ---------------------------------------------------------------


def test_bulk_retry_of_failed_deliveries(make_api: Callable[..., Api]) -> None:
    api = make_api()
    api.receiver.fail_next(400, times=2)
    for n in (5, 6):
        assert api.post("/api/articles", json=article(n, channels=["hook"])).status_code == 202
        api.wait_settled(f"api-{n}")
    failed = api.get("/api/deliveries", params={"state": "failed", "channel": "hook"}).json()
    assert failed["total"] == 2
    assert {d["last_error"] for d in failed["items"]} == {"webhook rejected the article (HTTP 400)"}

    retried = api.post("/api/deliveries/retry", params={"state": "failed"}, headers=AS_CMS)
    assert retried.status_code == 200, retried.text
    assert sorted(retried.json()["retried"]) == sorted(d["id"] for d in failed["items"])
    for n in (5, 6):
        (hook,) = api.wait_settled(f"api-{n}")["deliveries"]
        assert hook["state"] == "delivered"
        assert [(a["outcome"], a["actor"]) for a in hook["log"]] == [
            ("failed", None), ("retry", "cms"), ("delivered", None),
        ]  # fmt: skip
    again = api.post("/api/deliveries/retry", headers=AS_CMS).json()
    assert again == {"retried": [], "skipped": []}


def test_retry_and_cancel_follow_the_state_machine(make_api: Callable[..., Api]) -> None:
    api = make_api()
    api.post("/api/articles", json=article(7, channels=["hook"]))
    (delivered,) = api.wait_settled("api-7")["deliveries"]
    for action in ("retry", "cancel"):
        response = api.post(f"/api/deliveries/{delivered['id']}/{action}")
        assert response.status_code == 409, response.text
        assert error_of(response)["field"] == "delivery_id"
        assert "delivered" in error_of(response)["problem"]
    assert api.post("/api/deliveries/999999/retry").status_code == 404
    assert api.post("/api/deliveries/0/retry").status_code == 422

    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = api.post("/api/articles", json=article(8, channels=["hook"], publish_at=later))
    (delivery,) = scheduled.json()["deliveries"]
    assert delivery["state"] == "scheduled" and delivery["next_attempt_at"] is not None
    cancelled = api.post(f"/api/deliveries/{delivery['id']}/cancel", headers=AS_CMS)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    revived = api.post(f"/api/deliveries/{delivery['id']}/retry")
    assert revived.status_code == 200 and revived.json()["state"] in (
        "pending",
        "sending",
        "delivered",
    )
    (done,) = api.wait_settled("api-8")["deliveries"]
    assert done["state"] == "delivered"
    assert [(a["outcome"], a["actor"]) for a in done["log"]] == [
        ("cancelled", "cms"), ("retry", "desk"), ("delivered", None),
    ]  # fmt: skip


def test_lists_filter_and_paginate(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    start = datetime.now(UTC)
    for n in range(3):
        api.post("/api/articles", json=article(f"list-{n}", channels=["hook", "site"]))
    page = api.get("/api/articles", params={"limit": 2}).json()
    assert page["total"] == 3 and [a["id"] for a in page["items"]] == ["api-list-2", "api-list-1"]
    assert page["items"][0]["title"] == "Story list-2"
    assert [d["channel"] for d in page["items"][0]["deliveries"]] == ["hook", "site"]
    rest = api.get("/api/articles", params={"limit": 2, "offset": 2}).json()
    assert [a["id"] for a in rest["items"]] == ["api-list-0"]

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.get("/api/articles", params={"since": later}).json()["total"] == 0
    assert api.get("/api/articles", params={"until": start.isoformat()}).json()["total"] == 0
    assert api.get("/api/articles", params={"channel": "app"}).json()["total"] == 0
    assert api.get("/api/articles", params={"state": "failed"}).json()["total"] == 0

    hook = api.get("/api/deliveries", params={"channel": "hook", "state": "pending"}).json()
    assert hook["total"] == 3 and {d["channel"] for d in hook["items"]} == {"hook"}
    ids = [d["id"] for d in hook["items"]]
    assert ids == sorted(ids, reverse=True)
    one = api.get("/api/deliveries", params={"article_id": "api-list-1", "limit": 1}).json()
    assert one["total"] == 2 and len(one["items"]) == 1
    window = {"since": start.isoformat(), "until": later}
    assert api.get("/api/deliveries", params=window).json()["total"] == 6

    naive = api.get("/api/deliveries", params={"since": "2026-11-20T08:00:00"})
    assert naive.status_code == 422 and error_of(naive)["field"] == "since"
    bad_state = api.get("/api/deliveries", params={"state": "lost"})
    assert bad_state.status_code == 422 and error_of(bad_state)["field"] == "state[0]"
    assert api.get("/api/articles", params={"limit": 0}).status_code == 422
    assert error_of(api.get("/api/articles/no-such-story"))["problem"].endswith("does not exist")


def test_preview_shows_each_channel_and_stores_nothing(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    for path in ("/api/preview", "/api/articles/preview"):
        response = api.post(path, json=article(9, tags=["news"]), headers={})
        assert response.status_code == 200, response.text
        previews = response.json()
        assert {n: p["type"] for n, p in previews.items()} == {
            "site": "rss", "app": "app_feed", "hook": "webhook",
        }  # fmt: skip
        assert previews["hook"]["payload"]["title"] == "Story 9"
        assert previews["site"]["payload"]["tags"] == ["news"]
    only = api.post("/api/preview", json=article(9, channels=["app"])).json()
    assert list(only) == ["app"]
    bad = api.post("/api/preview", json=article(9, url="nope"))
    assert bad.status_code == 422 and error_of(bad)["field"] == "url"
    assert api.get("/api/articles/api-9").status_code == 404


def test_reads_can_require_a_token(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False, PUBLISHER_READ_REQUIRES_TOKEN="1")
    for path in ("/api/articles", "/api/deliveries", "/metrics"):
        assert api.get(path).status_code == 401
        assert api.get(path, headers=AS_CMS).status_code == 200
    assert api.post("/api/preview", json=article(10), headers={}).status_code == 401
    assert api.get("/healthz").status_code == 200
    assert api.get("/feeds/app.json").status_code == 200  # followers carry no tokens


def test_no_configured_tokens_refuses_every_change(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False, PUBLISHER_API_TOKENS="")
    response = api.post("/api/articles", json=article(11), headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert "PUBLISHER_API_TOKENS" in error_of(response)["problem"]


# -- what followers read ----------------------------------------------------------


def test_feeds_are_served_with_validators_and_304(make_api: Callable[..., Api]) -> None:
    api = make_api()
    empty = api.get("/feeds/app.json")  # before any delivery: built on demand
    assert empty.status_code == 200 and empty.json()["items"] == []
    api.post("/api/articles", json=article(12))
    api.wait_settled("api-12")
    store = api.stack.runtime.store
    api.stack.wait_until(
        lambda: not any(store.feed_changed_since_build(c) for c in ("site", "app"))
    )
    types = {
        "rss.xml": "application/rss+xml",
        "atom.xml": "application/atom+xml",
        "app.json": "application/feed+json",
    }
    time.sleep(DATE_SETTLES_AFTER)  # a fresh build is validated by its ETag alone
    for filename, content_type in types.items():
        # A coalesced follow-up build may land just after the wait: its date is
        # given once it, too, is DATE_SETTLES_AFTER old.
        api.stack.wait_until(
            lambda f=filename: "Last-Modified" in api.get(f"/feeds/{f}").headers, 15
        )
        response = api.get(f"/feeds/{filename}")
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == content_type
        etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
        assert etag.startswith('"') and modified.endswith(" GMT")
        assert b"Story 12" in response.content

        again = api.get(f"/feeds/{filename}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == etag
        weak = api.get(f"/feeds/{filename}", headers={"If-None-Match": f'"other", W/{etag}'})
        assert weak.status_code == 304
        by_date = api.get(f"/feeds/{filename}", headers={"If-Modified-Since": modified})
        assert by_date.status_code == 304
        stale = api.get(f"/feeds/{filename}", headers={"If-None-Match": '"stale"'})
        assert stale.status_code == 200 and stale.content == response.content
        old = "Sat, 01 Jan 2000 00:00:00 GMT"
        assert api.get(f"/feeds/{filename}", headers={"If-Modified-Since": old}).status_code == 200
    rss = feedparser.parse(api.get("/feeds/rss.xml").content)
    assert not rss.bozo and [e.title for e in rss.entries] == ["Story 12"]
    missing = api.get("/feeds/secrets.txt")
    assert missing.status_code == 404 and error_of(missing)["field"] == "filename"


def test_covers_are_served_from_the_store(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    ref = api.stack.runtime.store.save_media_file(SAMPLES / "skills-contest.jpg")
    response = api.get(f"/{ref}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content == (SAMPLES / "skills-contest.jpg").read_bytes()
    again = api.get(f"/{ref}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert api.get("/media/" + "0" * 64 + ".jpg").status_code == 404


# -- operators --------------------------------------------------------------------


def test_healthz_checks_database_and_broker(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    ok = api.get("/healthz")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}

    # the same deployment with its broker unreachable
    settings = api.stack.settings
    broken_env = {**api.stack.env, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    from publisher.config.settings import Settings

    runtime = Runtime(Settings.load(broken_env))
    assert runtime.settings.database_url == settings.database_url
    try:
        with BackgroundServer(create_app(runtime)) as server:
            down = requests.get(f"{server.url}/healthz", timeout=15)
    finally:
        runtime.close()
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unavailable")
    assert "hunter2" not in down.text


def test_metrics_report_deliveries_durations_queues_and_retries(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    api.receiver.fail_next(503)
    api.post("/api/articles", json=article(13, channels=["hook"]))
    api.wait_settled("api-13")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert 'publisher_deliveries{channel="hook",state="delivered"} 1.0' in text
    assert 'publisher_deliveries{channel="site",state="failed"} 0.0' in text
    assert 'publisher_attempt_duration_seconds_count{channel="hook",outcome="retry"} 1.0' in text
    bucket = (
        'publisher_attempt_duration_seconds_bucket{channel="hook",le="+Inf",outcome="delivered"}'
    )
    assert f"{bucket} 1.0" in text
    assert 'publisher_retries_total{by="automatic",channel="hook"} 1.0' in text
    assert "publisher_broker_up 1.0" in text
    assert 'publisher_queue_depth{queue="deliver.webhook"} 0.0' in text


def test_queue_depth_counts_what_waits_for_a_worker(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    for n in (14, 15):
        api.post("/api/articles", json=article(n, channels=["hook", "site"]))
    text = api.get("/metrics").text
    # Remote deliveries due now wait for one drain of their type: the backlog is
    # the deliveries gauge, the queue holds the one task that will send them.
    assert 'publisher_deliveries{channel="hook",state="pending"} 2.0' in text
    assert 'publisher_queue_depth{queue="deliver.webhook"} 1.0' in text
    # Feed items are delivered by their channel's rebuild: one, coalesced, not a task each.
    assert 'publisher_queue_depth{queue="deliver.rss"} 0.0' in text
    assert 'publisher_queue_depth{queue="control"} 1.0' in text
    assert 'publisher_deliveries{channel="hook",state="pending"} 2.0' in text


def test_the_store_queries_hold_on_postgres(make_api: Callable[..., Api]) -> None:
    for url in postgres_schema_url():
        api = make_api(worker=False, DATABASE_URL=url)
        assert api.stack.settings.database_url == url
        api.post("/api/articles", json=article(16, channels=["hook"], tags=["中文"]))
        page = api.get("/api/articles", params={"state": "pending", "channel": "hook"}).json()
        assert [(a["id"], a["title"]) for a in page["items"]] == [("api-16", "Story 16")]
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        assert api.get("/api/deliveries", params={"since": since}).json()["total"] == 1
        assert api.get("/api/articles/api-16").json()["article"]["tags"] == ["中文"]
        assert (
            'publisher_deliveries{channel="hook",state="pending"} 1.0' in api.get("/metrics").text
        )
        assert api.get("/healthz").json()["status"] == "ok"
        api.stack.runtime.close()  # before the schema is dropped


# -- the OpenAPI description is the truth --------------------------------------------


def test_openapi_describes_auth_errors_and_models(make_api: Callable[..., Api]) -> None:
    api = make_api(worker=False)
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    mutating = [
        ("post", "/api/articles"),
        ("post", "/api/deliveries/retry"),
        ("post", "/api/deliveries/{delivery_id}/retry"),
        ("post", "/api/deliveries/{delivery_id}/cancel"),
        ("delete", "/api/articles/{article_id}"),
    ]
    for method, path in mutating:
        operation = paths[path][method]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert "401" in operation["responses"]
    assert "security" not in paths["/api/preview"]["post"]
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert paths["/api/articles"]["post"]["responses"]["422"]["content"]["application/json"] == {
        "schema": error
    }
    assert paths["/api/deliveries/{delivery_id}/retry"]["post"]["responses"]["409"]


@pytest.mark.timeout(120)
def test_schemathesis_finds_no_server_error_and_responses_match_the_schema(
    make_api: Callable[..., Api],
) -> None:
    """Every operation, with inputs that fit the schema and inputs that break it, as an
    editor's token would send them: never a 5xx, and every status, content type and
    body is one the schema documents. Deterministic and bounded (40 examples per
    operation and mode, ~20 s); PUBLISHER_API_FUZZ_EXAMPLES=300 explores further."""
    import hypothesis
    import schemathesis
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    api = make_api()
    api.post("/api/articles", json=article(17))  # so some ids exist
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    examples = int(os.environ.get("PUBLISHER_API_FUZZ_EXAMPLES", "40"))
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    session = requests.Session()
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=api.url, session=session, headers=AS_DESK)
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:500]}\n{case.as_curl_command()}"
                )
                case.validate_response(response, checks=checks)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                # No parameters to get wrong (GET /healthz): nothing negative to send.
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    assert calls > 100


# -- publisher serve ------------------------------------------------------------------


def _processes_of(data_dir: Path) -> list[int]:
    """Pids whose environment names this data dir (the serve process and its worker)."""
    marker = f"PUBLISHER_DATA_DIR={data_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.timeout(120)
def test_serve_runs_api_and_worker_and_stops_both_on_sigterm(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    receiver = Receiver()
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
    data_dir = tmp_path / "var"
    port = free_port()
    with BackgroundServer(receiver.app()) as hook:
        matrix = write_matrix(
            tmp_path / "matrix.toml",
            {"site": {"type": "rss"}, "hook": {"type": "webhook", "base_url": f"{hook.url}/hook"}},
            {"title": "Serve Daily"},
        )
        env = {
            **os.environ, **FAST,
            "PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(data_dir),
            "PUBLISHER_REDIS_PREFIX": prefix, "REDIS_URL": TEST_REDIS_URL,
            "PUBLISHER_API_TOKENS": TOKENS,
        }  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "publisher", "serve", "--port", str(port)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                try:
                    if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
            # As a user would: the sample, posted with curl.
            sample = SAMPLES / "digital-talent.json"
            posted = _curl(
                "-X",
                "POST",
                f"{base}/api/articles",
                "-H",
                f"Authorization: {AS_DESK['Authorization']}",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                f"@{sample}",
            )
            assert posted.startswith("HTTP/1.1 202"), posted
            deadline = time.monotonic() + 60
            while not receiver.posts:
                assert time.monotonic() < deadline, (data_dir / "worker.log").read_text()
                time.sleep(0.2)
            # The feed, then a conditional GET of it: 304.
            deadline = time.monotonic() + 30
            while "<item>" not in (feed := requests.get(f"{base}/feeds/rss.xml", timeout=5)).text:
                assert time.monotonic() < deadline, "the feed was not rebuilt"
                time.sleep(0.2)
            etag = feed.headers["ETag"]
            again = _curl(f"{base}/feeds/rss.xml", "-H", f"If-None-Match: {etag}")
            assert again.startswith("HTTP/1.1 304"), again
            assert len(_processes_of(data_dir)) >= 2  # serve and its worker
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=60)[0].decode()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)
    assert proc.returncode == 0, output
    assert f"API on {base}" in output
    assert _processes_of(data_dir) == []
    assert [p["id"] for p in receiver.posts.values()] == ["2024-04-22-digital-talent"]


def _curl(*args: str) -> str:
    """curl's status line and headers (and body), as a user sees them with -i."""
    done = subprocess.run(["curl", "-sS", "-i", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_retract_needs_a_token_and_is_tracked(make_api: Callable[..., Api]) -> None:
    api = make_api()
    assert api.post("/api/articles", json=article(31)).status_code == 202
    api.wait_settled("api-31")
    assert api.delete("/api/articles/api-31").status_code == 401
    assert api.get("/api/articles/api-31").json()["retracted_at"] is None
    assert api.delete("/api/articles/nope", headers=AS_DESK).status_code == 404
    retracted = api.delete("/api/articles/api-31", headers=AS_DESK)
    assert retracted.status_code == 202
    body = retracted.json()
    assert body["retracted_at"] is not None
    removals = {d["channel"]: d["state"] for d in body["deliveries"] if d["kind"] == "retract"}
    assert removals["site"] in ("pending", "sending", "delivered")  # the worker is quick
    assert removals["hook"] == "failed"  # a webhook cannot take a post back: reported
    detail = api.wait_settled("api-31")
    log = next(
        d["log"] for d in detail["deliveries"] if d["kind"] == "retract" and d["channel"] == "site"
    )
    assert (log[0]["outcome"], log[0]["actor"]) == ("retract", "desk")
    assert log[-1]["outcome"] == "delivered"
