"""Failure notifications: signing, settings, the ledger on SQLite and PostgreSQL,
the sender against a loopback endpoint, and end to end through a real worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from fastapi import FastAPI, Request, Response

from channels import build_channel
from channels.base import Channel, ChannelContext, Receipt, SendAttempt
from publisher.config.settings import Settings
from publisher.delivery import publishing
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.notify import Notifier, event_for, plan_notifications, sign, verify
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import (
    ConfigError,
    OutcomeUnknownError,
    PermanentError,
    ReauthRequiredError,
    RetryableError,
)
from publisher.domain.states import State
from publisher.local.cluster import Stack
from publisher.store import Claim, PlannedNotification, Store
from publisher.store.models import NotificationRow
from publisher.worker.dispatch import Dispatcher
from sandbox.server import BackgroundServer
from tests.conftest import write_matrix
from tests.support.receiver import Receiver
from tests.worker.test_worker import make_stack, receiver  # noqa: F401 - fixtures

SECRET_ENV = "PUBLISHER_TEST_NOTIFY_KEY"
SECRET = "n0tify-key-7c1e-do-not-log"


# ---- a notification endpoint on loopback, checking signatures independently ----------------


@dataclass
class Endpoint:
    """A newsroom's alerting service: verifies the signature over the raw body
    (401 if wrong), and can be told to fail the next requests."""

    secret: bytes
    seen: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures.extend([status] * times)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/notify")
        async def notify(request: Request) -> Response:
            body = await request.body()
            expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            given = request.headers.get("X-Publisher-Signature", "")
            valid = hmac.compare_digest(expected, given)
            with self.lock:
                self.seen.append((dict(request.headers), body, valid))
                failure = self.failures.pop(0) if self.failures and valid else None
            return Response(status_code=401 if not valid else failure or 204)

        return app


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    ep = Endpoint(SECRET.encode())
    with BackgroundServer(ep.app()) as server:
        yield ep, f"{server.url}/notify"


def write_notify_matrix(
    path: Path, channels: dict[str, dict[str, Any]], notifications: dict[str, dict[str, Any]]
) -> Path:
    write_matrix(path, channels, {"title": "Test Daily"})
    lines = []
    for name, table in notifications.items():
        lines.append(f"[notifications.{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in table.items())
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def load_settings(
    tmp_path: Path,
    redis_prefix: str,
    notifications: dict[str, dict[str, Any]],
    channels: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    channels = channels or {"hook": {"type": "webhook", "base_url": "http://127.0.0.1:9/hook"}}
    matrix = write_notify_matrix(tmp_path / "notify.toml", channels, notifications)
    return Settings.load(
        {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "PUBLISHER_REDIS_PREFIX": redis_prefix,
        }
    )


def article(n: int = 1) -> Article:
    return parse_article({
        "id": f"note-{n}", "url": f"https://news.example.org/n{n}", "title": f"Note {n}",
        "body_html": f"<p>Body {n}.</p>", "published_at": "2026-11-20T08:00:00+08:00",
    })  # fmt: skip


class FakeDispatcher:
    """Records what would go to the broker."""

    def __init__(self) -> None:
        self.notified: list[tuple[int, float]] = []

    def notify(self, ids: Any, countdown: float = 0.0) -> int:
        self.notified.extend((i, countdown) for i in ids)
        return len(self.notified)

    def enqueue(self, items: Any) -> int:
        return 0

    def request_feed_rebuilds(self, channels: list[str]) -> list[str]:
        return []


# ---- signing ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b"The quick brown fox jumps over the lazy dog"
    known = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert sign(b"key", body) == known
    assert verify(b"key", body, known)
    assert not verify(b"key", body + b" ", known)
    assert not verify(b"other", body, known)
    assert not verify(b"key", body, known.removeprefix("sha256="))


def test_events_are_told_apart_by_the_error_class() -> None:
    assert event_for(ReauthRequiredError("token revoked")) == "reauth"
    assert event_for(PermanentError("content rejected")) == "failed"
    assert event_for(RetryableError("gave up")) == "failed"


# ---- settings --------------------------------------------------------------------------------


def test_notification_tables_are_parsed(tmp_path: Path, redis_prefix: str) -> None:
    settings = load_settings(
        tmp_path,
        redis_prefix,
        {
            "desk": {"url": "https://alerts.example.org/in", "secret_env": SECRET_ENV},
            "ops": {
                "url": "http://127.0.0.1:1/x",
                "secret_env": SECRET_ENV,
                "events": ["reauth"],
                "channels": ["hook"],
                "max_attempts": 3,
            },
        },
    )
    desk, ops = settings.notifications["desk"], settings.notifications["ops"]
    assert desk.events == ("failed", "reauth") and desk.channels is None
    assert desk.max_attempts == 8
    assert ops.events == ("reauth",) and ops.channels == ("hook",) and ops.max_attempts == 3
    assert ops.wants("reauth", "hook") and not ops.wants("failed", "hook")
    assert not ops.wants("reauth", "site")
    assert SECRET not in repr(settings)


def test_a_matrix_without_notifications_has_none(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().notifications == {}


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"url": "https://a.example/", "secret_env": "K", "channels": ["nope"]}, "nope"),
        ({"url": "https://a.example/", "secret_env": "K", "events": ["sent"]}, "events"),
        ({"url": "https://a.example/", "secret_env": "K", "events": []}, "events"),
        ({"url": "https://a.example/"}, "secret_env"),
        ({"url": "ftp://a.example/", "secret_env": "K"}, "url"),
        ({"url": "https://a.example/", "secret_env": "K", "secret": "x"}, "secret"),
    ],
    ids=["unknown-channel", "unknown-event", "no-event", "no-key", "not-http", "unknown-key"],
)
def test_bad_notification_tables_are_refused(
    tmp_path: Path, redis_prefix: str, table: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"notifications.desk.*{problem}"):
        load_settings(tmp_path, redis_prefix, {"desk": table})


def test_the_key_is_read_when_sending_and_its_error_names_only_the_variable(
    tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        tmp_path, redis_prefix, {"desk": {"url": "https://a.example/", "secret_env": SECRET_ENV}}
    )
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ConfigError, match=SECRET_ENV):
        settings.notifications["desk"].secret()
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert settings.notifications["desk"].secret() == SECRET.encode()


def test_notifications_are_planned_per_event_and_channel(tmp_path: Path, redis_prefix: str) -> None:
    settings = load_settings(
        tmp_path,
        redis_prefix,
        {
            "all": {"url": "https://a.example/", "secret_env": "K"},
            "reauth-only": {"url": "https://b.example/", "secret_env": "K", "events": ["reauth"]},
            "site-only": {"url": "https://c.example/", "secret_env": "K", "channels": ["site"]},
        },
        channels={"hook": {"type": "webhook"}, "site": {"type": "rss"}},
    )
    at = datetime(2026, 11, 20, 0, 0, 1, 250000, tzinfo=UTC)

    def plan(event: str, channel: str) -> list[PlannedNotification]:
        return plan_notifications(
            settings, event=event, delivery_id=7, article_id="a-1", channel=channel,
            reason="rejected (HTTP 422)", code="20021", attempts=2, at=at,
        )  # fmt: skip

    assert [p.target for p in plan("failed", "hook")] == ["all"]
    assert [p.target for p in plan("reauth", "hook")] == ["all", "reauth-only"]
    assert [p.target for p in plan("failed", "site")] == ["all", "site-only"]
    (first, *_) = plan("failed", "hook")
    assert json.loads(first.body) == {
        "event": "failed", "delivery_id": 7, "article_id": "a-1", "channel": "hook",
        "reason": "rejected (HTTP 422)", "code": "20021", "attempts": 2,
        "at": "2026-11-20T00:00:01.250+00:00",
    }  # fmt: skip
    assert first.max_attempts == 8


# ---- the ledger, on SQLite and PostgreSQL -------------------------------------------------


@pytest.fixture
def hook_settings(tmp_path: Path, redis_prefix: str) -> Settings:
    return load_settings(
        tmp_path,
        redis_prefix,
        {"desk": {"url": "http://127.0.0.1:9/notify", "secret_env": SECRET_ENV}},
    )


def published_claim(store: Store, settings: Settings, now: datetime | None = None) -> Claim:
    context = ChannelContext(settings)
    channels = {n: build_channel(c, context) for n, c in settings.channels.items()}
    (item,) = publishing.publish(article(), store, channels).to_enqueue
    claim = store.claim(item.delivery_id, 60, now=now)
    assert claim is not None
    return claim


def fail(store: Store, claim: Claim, plans: list[PlannedNotification]) -> list[int] | None:
    return store.record_failure(
        claim, outcome="failed", reason="webhook rejected the article (HTTP 422)", code=None,
        http_status=422, started_at=datetime.now(UTC), duration_ms=3, retry_at=None,
        outcome_unknown=False, notifications=plans,
    )  # fmt: skip


PLAN = PlannedNotification("desk", "failed", '{"event":"failed"}', 5)


def test_the_notification_is_written_with_the_failure(
    store: Store, hook_settings: Settings
) -> None:
    claim = published_claim(store, hook_settings)
    ids = fail(store, claim, [PLAN])
    assert ids is not None and len(ids) == 1
    assert store.delivery(claim.delivery_id).state == State.FAILED
    (row,) = store.notifications(delivery_id=claim.delivery_id)
    assert (row.id, row.target, row.event, row.state) == (ids[0], "desk", "failed", "pending")
    assert (row.attempts, row.max_attempts, row.body) == (0, 5, PLAN.body)


def test_a_fenced_out_failure_writes_no_notification(store: Store, hook_settings: Settings) -> None:
    now = datetime.now(UTC)
    stale = published_claim(store, hook_settings, now=now - timedelta(seconds=120))
    fresh = store.claim(stale.delivery_id, 60, now=now)
    assert fresh is not None  # the first worker's lease expired: taken over
    assert fail(store, stale, [PLAN]) is None
    assert store.notifications() == []
    assert fail(store, fresh, []) == []  # recorded, nothing to notify


def test_only_one_of_many_racing_workers_claims_a_notification(
    store: Store, hook_settings: Settings
) -> None:
    (notification_id,) = fail(store, published_claim(store, hook_settings), [PLAN]) or []
    wins = []
    barrier = threading.Barrier(6)

    def race() -> None:
        barrier.wait()
        claim = store.claim_notification(notification_id, 60)
        if claim is not None:
            wins.append(claim)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and wins[0].attempt == 1 and wins[0].body == PLAN.body


def test_notification_claims_lease_fence_and_settle(store: Store, hook_settings: Settings) -> None:
    (notification_id,) = fail(store, published_claim(store, hook_settings), [PLAN]) or []
    now = datetime.now(UTC)
    first = store.claim_notification(notification_id, 60, now=now)
    assert first is not None
    assert store.claim_notification(notification_id, 60, now=now + timedelta(seconds=30)) is None
    second = store.claim_notification(notification_id, 60, now=now + timedelta(seconds=61))
    assert second is not None and second.attempt == 2
    assert not store.record_notification(first, http_status=204)  # fenced out
    retry_at = now + timedelta(seconds=10)
    assert store.record_notification(second, http_status=503, error="HTTP 503", retry_at=retry_at)
    (row,) = store.notifications(states=["retrying"])
    assert (row.attempts, row.last_status, row.last_error) == (2, 503, "HTTP 503")
    assert store.claim_notification(notification_id, 60, now=now + timedelta(seconds=5)) is None
    third = store.claim_notification(notification_id, 60, now=now + timedelta(seconds=11))
    assert third is not None and third.attempt == 3
    assert store.record_notification(third, http_status=204)
    (row,) = store.notifications(delivery_id=third.delivery_id)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 3, 204, None)
    assert row.delivered_at is not None
    later = now + timedelta(hours=1)
    assert store.claim_notification(notification_id, 60, now=later) is None


def test_the_sweeper_finds_notifications_whose_message_was_lost(
    store: Store, hook_settings: Settings
) -> None:
    (notification_id,) = fail(store, published_claim(store, hook_settings), [PLAN]) or []
    now = datetime.now(UTC)
    assert store.collect_due_notifications(requeue_after=30, now=now) == []  # just enqueued
    later = now + timedelta(seconds=31)
    assert store.collect_due_notifications(requeue_after=30, now=later) == [notification_id]
    again = later + timedelta(seconds=1)
    assert store.collect_due_notifications(requeue_after=30, now=again) == []
    claim = store.claim_notification(notification_id, 5, now=again)
    assert claim is not None  # ...and its worker dies: the lease runs out
    dead = again + timedelta(seconds=40)
    assert store.collect_due_notifications(requeue_after=30, now=dead) == [notification_id]


# ---- the engine: which failures notify, and as which event --------------------------------


class Rejecting(Channel):
    """A channel whose every send fails with the given error."""

    type_name: ClassVar[str] = "webhook"

    def __init__(self, settings: Settings, error: Exception) -> None:
        super().__init__(settings.channels["hook"], ChannelContext(settings))
        self.error = error

    def format(self, article: Article) -> dict[str, Any]:
        return {"title": article.title}

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        raise self.error


@pytest.mark.parametrize(
    ("error", "outcome", "event"),
    [
        (ReauthRequiredError("token revoked; re-authorise", code="21327"), "failed", "reauth"),
        (PermanentError("content rejected", code="20021"), "failed", "failed"),
        (OutcomeUnknownError("no answer"), "retry", None),
    ],
    ids=["reauth", "failed", "retrying-notifies-nothing"],
)
def test_the_engine_notifies_final_failures_as_their_event(
    tmp_path: Path, redis_prefix: str, error: Exception, outcome: str, event: str | None
) -> None:
    settings = load_settings(
        tmp_path,
        redis_prefix,
        {"desk": {"url": "http://127.0.0.1:9/notify", "secret_env": SECRET_ENV}},
    )
    store = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    context = ChannelContext(settings)
    channels = {n: build_channel(c, context) for n, c in settings.channels.items()}
    (item,) = publishing.publish(article(), store, channels).to_enqueue
    dispatcher = FakeDispatcher()
    engine = DeliveryEngine(
        settings, store, {"hook": Rejecting(settings, error)}, cast(Dispatcher, dispatcher)
    )

    assert engine.deliver(item.delivery_id) == outcome
    rows = store.notifications(delivery_id=item.delivery_id)
    if event is None:
        assert rows == [] and dispatcher.notified == []
    else:
        (row,) = rows
        assert row.event == event and dispatcher.notified == [(row.id, 0.0)]
        body = json.loads(row.body)
        assert body["event"] == event and body["reason"] == str(error)
        assert body["code"] == getattr(error, "code", None) and body["attempts"] == 1
    store.dispose()


# ---- the sender, in process, against a loopback endpoint ----------------------------------


@pytest.fixture
def sender(
    tmp_path: Path, redis_prefix: str, endpoint: tuple[Endpoint, str]
) -> Iterator[tuple[Notifier, FakeDispatcher, Store, int]]:
    _, url = endpoint
    settings = load_settings(
        tmp_path,
        redis_prefix,
        {"desk": {"url": url, "secret_env": SECRET_ENV, "max_attempts": 2, "timeout": 2}},
    )
    store = Store(f"sqlite:///{tmp_path / 'sender.db'}")
    store.migrate()
    claim = published_claim(store, settings)
    (plan,) = plan_notifications(
        settings, event="failed", delivery_id=claim.delivery_id, article_id="note-1",
        channel="hook", reason="webhook rejected the article (HTTP 422)", code=None,
        attempts=1, at=datetime.now(UTC),
    )  # fmt: skip
    (notification_id,) = fail(store, claim, [plan]) or []
    dispatcher = FakeDispatcher()
    yield (
        Notifier(settings, store, cast(Dispatcher, dispatcher)),
        dispatcher,
        store,
        notification_id,
    )
    store.dispose()


def test_the_sender_signs_the_stored_body_and_records_delivered(
    sender: tuple[Notifier, FakeDispatcher, Store, int],
    endpoint: tuple[Endpoint, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier, _, store, notification_id = sender
    ep, url = endpoint
    monkeypatch.setenv(SECRET_ENV, SECRET)
    caplog.set_level(logging.DEBUG)

    assert notifier.send(notification_id) == "delivered"
    assert notifier.send(notification_id) == "skipped"  # settled: a duplicate message is harmless
    ((headers, body, valid),) = ep.seen
    (row,) = store.notifications()
    assert valid and body == row.body.encode()
    assert headers["x-publisher-event"] == "failed"
    assert headers["x-publisher-delivery"] == str(notification_id)
    assert headers["content-type"] == "application/json"
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 204)
    assert SECRET not in caplog.text and url not in caplog.text


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        (410, "failed", "notify desk: the endpoint answered HTTP 410"),
        (503, "retrying", "notify desk: platform error HTTP 503"),
    ],
)
def test_the_sender_fails_refusals_and_retries_outages(
    sender: tuple[Notifier, FakeDispatcher, Store, int],
    endpoint: tuple[Endpoint, str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    state: str,
    reason: str,
) -> None:
    notifier, dispatcher, store, notification_id = sender
    ep, _ = endpoint
    monkeypatch.setenv(SECRET_ENV, SECRET)
    ep.fail_next(status)

    assert notifier.send(notification_id) == ("failed" if state == "failed" else "retry")
    (row,) = store.notifications()
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        state, 1, status, reason,
    )  # fmt: skip
    if state == "retrying":
        ((queued, countdown),) = dispatcher.notified
        assert queued == notification_id and 0 < countdown <= 2.0
        ep.fail_next(503)
        with store.session() as session, session.begin():  # the retry's time has come
            session.get_one(NotificationRow, row.id).next_attempt_at = datetime.now(UTC)
        assert notifier.send(notification_id) == "failed"  # max_attempts = 2
        (row,) = store.notifications()
        assert row.last_error == "gave up after 2 attempts: notify desk: platform error HTTP 503"


def test_an_empty_key_variable_fails_the_notification_naming_it(
    sender: tuple[Notifier, FakeDispatcher, Store, int],
    endpoint: tuple[Endpoint, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notifier, _, store, notification_id = sender
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert notifier.send(notification_id) == "failed"
    (row,) = store.notifications()
    assert row.last_error == f"notifications.desk: environment variable {SECRET_ENV} is empty"
    assert endpoint[0].seen == []


# ---- end to end: a real worker, a failing webhook, a signed notice -------------------------


def notify_stack(
    build: Callable[..., Stack], tmp_path: Path, hook_url: str, notify_url: str
) -> Stack:
    channels = {"hook": {"type": "webhook", "base_url": hook_url}}
    matrix = write_notify_matrix(
        tmp_path / "notify-e2e.toml",
        channels,
        {"desk": {"url": notify_url, "secret_env": SECRET_ENV, "backoff_base": 0.2}},
    )
    return build(channels, PUBLISHER_CONFIG=str(matrix), **{SECRET_ENV: SECRET})


def test_a_failed_delivery_sends_one_signed_notification(
    make_stack: Callable[..., Stack],  # noqa: F811 - fixture
    receiver: tuple[Receiver, str],  # noqa: F811 - fixture
    endpoint: tuple[Endpoint, str],
    tmp_path: Path,
) -> None:
    rec, hook_url = receiver
    ep, notify_url = endpoint
    rec.fail_next(422)
    stack = notify_stack(make_stack, tmp_path, hook_url, notify_url)
    stack.start_worker()
    stack.runtime.publish(article(1))
    stack.wait_settled(["note-1"])
    store = stack.runtime.store
    (delivery,) = store.deliveries(article_ids=["note-1"])
    assert delivery.state == State.FAILED
    stack.wait_until(lambda: [n.state for n in store.notifications()] == ["delivered"])

    ((headers, body, valid),) = ep.seen
    (notice,) = store.notifications(delivery_id=delivery.id)
    assert valid and headers["x-publisher-event"] == "failed"
    assert headers["x-publisher-delivery"] == str(notice.id)
    sent = json.loads(body)
    at = datetime.fromisoformat(sent.pop("at"))
    assert sent == {
        "event": "failed", "delivery_id": delivery.id, "article_id": "note-1",
        "channel": "hook", "reason": "webhook rejected the article (HTTP 422)",
        "code": None, "attempts": 1,
    }  # fmt: skip
    assert abs((at - delivery.updated_at).total_seconds()) < 5
    assert (notice.attempts, notice.last_status, notice.last_error) == (1, 204, None)
    assert SECRET not in stack.logs()


def test_a_notification_endpoint_that_fails_twice_is_retried_until_delivered(
    make_stack: Callable[..., Stack],  # noqa: F811 - fixture
    receiver: tuple[Receiver, str],  # noqa: F811 - fixture
    endpoint: tuple[Endpoint, str],
    tmp_path: Path,
) -> None:
    rec, hook_url = receiver
    ep, notify_url = endpoint
    rec.fail_next(422)
    ep.fail_next(503, times=2)
    stack = notify_stack(make_stack, tmp_path, hook_url, notify_url)
    stack.start_worker()
    stack.runtime.publish(article(2))
    stack.wait_settled(["note-2"])
    store = stack.runtime.store
    stack.wait_until(lambda: [n.state for n in store.notifications()] == ["delivered"])

    (notice,) = store.notifications()
    assert (notice.attempts, notice.last_status, notice.last_error) == (3, 204, None)
    assert len(ep.seen) == 3 and all(valid for _, _, valid in ep.seen)
    assert {h["x-publisher-delivery"] for h, _, _ in ep.seen} == {str(notice.id)}
    assert {body for _, body, _ in ep.seen} == {notice.body.encode()}  # same bytes each time


def test_a_notification_whose_message_was_lost_is_sent_by_the_sweeper(
    make_stack: Callable[..., Stack],  # noqa: F811 - fixture
    receiver: tuple[Receiver, str],  # noqa: F811 - fixture
    endpoint: tuple[Endpoint, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec, hook_url = receiver
    ep, notify_url = endpoint
    rec.fail_next(422)
    stack = notify_stack(make_stack, tmp_path, hook_url, notify_url)
    runtime = stack.runtime
    (item,) = runtime.publish(article(3)).to_enqueue
    monkeypatch.setattr(runtime.dispatcher, "notify", lambda ids, countdown=0.0: 0)  # lost
    assert runtime.engine.deliver(item.delivery_id) == "failed"  # in this process
    assert [n.state for n in runtime.store.notifications()] == ["pending"]

    stack.start_worker()  # its sweeper finds the notification nobody was told to send
    stack.wait_until(lambda: [n.state for n in runtime.store.notifications()] == ["delivered"])
    ((_, _, valid),) = ep.seen
    assert valid
