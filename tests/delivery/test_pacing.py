"""Quiet hours and account spacing: the window on a controlled clock, the Redis
slots under contention, the store's hold, and both through a real worker."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis

from channels import build_channel, check_matrix
from channels.base import Channel, ChannelContext
from publisher.config.pacing import QuietHours
from publisher.config.settings import ChannelConfig, Settings
from publisher.coord.slots import AccountSlots, Rule
from publisher.delivery import publishing
from publisher.delivery.engine import DeliveryEngine
from publisher.delivery.pacing import CLEAR_FOR, Deferral, Pacer, Slot
from publisher.domain.article import parse_article
from publisher.domain.errors import ConfigError, RateLimitedError
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from publisher.store import Claim, Enqueue, Store
from publisher.worker.dispatch import Dispatcher
from tests.support.receiver import Receiver
from tests.worker.test_worker import hook_article, make_stack, receiver  # noqa: F401 - fixtures

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: tzinfo, *fields: int) -> datetime:
    return datetime(*fields).replace(tzinfo=zone)  # type: ignore[arg-type]


def utc(*fields: int) -> datetime:
    return local(UTC, *fields)


# ---- the window, on a controlled clock ---------------------------------------------

NIGHT = QuietHours.parse("23:00-07:00", "Asia/Shanghai")


@pytest.mark.parametrize(
    ("now", "release"),
    [
        (local(SHANGHAI, 2026, 11, 20, 22, 59, 59), None),
        (local(SHANGHAI, 2026, 11, 20, 23, 0), local(SHANGHAI, 2026, 11, 21, 7, 0)),
        (local(SHANGHAI, 2026, 11, 20, 23, 30), local(SHANGHAI, 2026, 11, 21, 7, 0)),
        (local(SHANGHAI, 2026, 11, 21, 0, 0), local(SHANGHAI, 2026, 11, 21, 7, 0)),
        (local(SHANGHAI, 2026, 11, 21, 6, 59, 59), local(SHANGHAI, 2026, 11, 21, 7, 0)),
        (local(SHANGHAI, 2026, 11, 21, 7, 0), None),
        (local(SHANGHAI, 2026, 11, 21, 12, 0), None),
        (utc(2026, 11, 20, 16, 30), local(SHANGHAI, 2026, 11, 21, 7, 0)),  # 00:30 there
    ],
    ids=["before", "opens", "evening", "midnight", "last-second", "closes", "noon", "from-utc"],
)
def test_a_window_crossing_midnight(now: datetime, release: datetime | None) -> None:
    assert NIGHT.release_at(now) == release


def test_a_window_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-14:00", "Asia/Shanghai")
    assert lunch.release_at(local(SHANGHAI, 2026, 11, 21, 11, 59)) is None
    assert lunch.release_at(local(SHANGHAI, 2026, 11, 21, 13, 0)) == local(
        SHANGHAI, 2026, 11, 21, 14, 0
    )
    assert lunch.release_at(local(SHANGHAI, 2026, 11, 21, 23, 0)) is None
    assert QuietHours.parse("7:00-9:30:15", "UTC").end.isoformat() == "09:30:15"


@pytest.mark.parametrize(
    ("window", "now", "release"),
    [
        # Spring forward, 2026-03-08: 02:00 EST becomes 03:00 EDT. The night is an hour short.
        ("23:00-07:00", utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 11, 0)),  # 23:00 EST
        ("23:00-07:00", utc(2026, 3, 8, 10, 59), utc(2026, 3, 8, 11, 0)),  # 06:59 EDT
        ("23:00-07:00", utc(2026, 3, 8, 11, 0), None),  # 07:00 EDT
        ("23:00-07:00", utc(2026, 3, 8, 3, 59), None),  # 22:59 EST
        # An end the clock skips ends the window when the clock jumps past it.
        ("22:00-02:30", utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7, 0)),  # 01:59 EST → 03:00 EDT
        ("22:00-02:30", utc(2026, 3, 8, 7, 0), None),  # 03:00 EDT
        # A start the clock skips opens it at the jump.
        ("02:30-04:00", utc(2026, 3, 8, 6, 59), None),  # 01:59 EST
        ("02:30-04:00", utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0)),  # 03:00 EDT
        # Fall back, 2026-11-01: 02:00 EDT becomes 01:00 EST. The night is an hour long.
        ("23:00-07:00", utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 12, 0)),  # 2nd 01:30, EST
        ("23:00-07:00", utc(2026, 11, 1, 11, 59), utc(2026, 11, 1, 12, 0)),  # 06:59 EST
        ("23:00-07:00", utc(2026, 11, 1, 12, 0), None),
        # A repeated end counts at its first occurrence: the window is not opened twice.
        ("00:30-01:30", utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30)),  # 01:00 EDT
        ("00:30-01:30", utc(2026, 11, 1, 6, 10), None),  # 01:10 EST, the second pass
    ],
)
def test_daylight_saving_days_in_new_york(
    window: str, now: datetime, release: datetime | None
) -> None:
    assert QuietHours.parse(window, "America/New_York").release_at(now) == release


def test_the_log_shows_the_wall_clock_of_the_channel() -> None:
    assert NIGHT.wall(utc(2026, 11, 20, 23, 0)) == "07:00 Asia/Shanghai"
    assert NIGHT.wall(utc(2026, 11, 20, 23, 0, 5)) == "07:00:05 Asia/Shanghai"
    spring = QuietHours.parse("22:00-02:30", "America/New_York")
    assert spring.wall(utc(2026, 3, 8, 7, 0)) == "03:00 America/New_York"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("23:00", "not a window"),
        ("23:00-7", "not a time of day"),
        ("24:00-07:00", "not a time of day"),
        ("23:00-23:00", "same time"),
    ],
)
def test_bad_windows_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        QuietHours.parse(text, "Asia/Shanghai")


# ---- settings: the zone, and every option checked at load -----------------------------

HOOK = {"type": "webhook", "base_url": "http://127.0.0.1:9/hook"}


def test_the_channel_zone_wins_over_the_newsroom_zone(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        {
            "own": {**HOOK, "quiet_hours": "23:00-07:00", "timezone": "Europe/Berlin"},
            "desk": {**HOOK, "quiet_hours": "23:00-07:00"},
        },
        PUBLISHER_TIMEZONE="Asia/Shanghai",
    )
    pacer = Pacer(settings)
    own = pacer.rules(settings.channel("own")).quiet_hours
    desk = pacer.rules(settings.channel("desk")).quiet_hours
    assert own is not None and own.zone_name == "Europe/Berlin"
    assert desk is not None and desk.zone_name == "Asia/Shanghai"


def test_quiet_hours_without_any_zone_are_refused_naming_the_channel(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match=r"channels\.desk\.quiet_hours: needs a time zone"):
        make_settings({"desk": {**HOOK, "quiet_hours": "23:00-07:00"}})


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"quiet_hours": "late-early", "timezone": "UTC"}, r"hook\.quiet_hours: 'late'"),
        ({"quiet_hours": "23:00-07:00", "timezone": "Mars/Olympus"}, r"hook\.timezone: "),
        ({"min_spacing": 0}, r"hook\.min_spacing: must be a number"),
        ({"min_spacing": "10m"}, r"hook\.min_spacing: must be a number"),
    ],
)
def test_bad_options_are_refused_at_load(
    make_settings: Callable[..., Settings], table: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_settings({"hook": {**HOOK, **table}})


@pytest.mark.parametrize("option", [{"quiet_hours": "23:00-07:00"}, {"min_spacing": 60}])
def test_feeds_are_never_paced(
    make_settings: Callable[..., Settings], option: dict[str, Any]
) -> None:
    settings = make_settings({"site": {"type": "rss", **option}}, PUBLISHER_TIMEZONE="UTC")
    with pytest.raises(ConfigError, match=r"channels\.site\.\w+: a rss feed .* never paced"):
        check_matrix(settings.channels)


# ---- the pacer's decision --------------------------------------------------------------


def claim(delivery_id: int, channel: str, kind: str = Kind.PUBLISH, **extra: Any) -> Claim:
    return Claim(
        delivery_id=delivery_id, token="t", channel=channel, channel_type="webhook",
        article_id="a", article_version=1, attempt=1, max_attempts=8, payload={},
        checkpoint={}, outcome_unknown=False, kind=kind, **extra,
    )  # fmt: skip


@pytest.fixture
def paced(
    make_settings: Callable[..., Settings], redis_client: redis.Redis
) -> tuple[Pacer, dict[str, Channel]]:
    account = uuid.uuid4().hex[:8]
    settings = make_settings(
        {
            "night": {**HOOK, "quiet_hours": "23:00-07:00"},
            "spaced": {**HOOK, "min_spacing": 600, "account": account},
        },
        PUBLISHER_TIMEZONE="Asia/Shanghai",
    )
    context = ChannelContext(settings, redis_client)
    channels = {n: build_channel(c, context) for n, c in settings.channels.items()}
    return Pacer(settings), channels


def test_quiet_hours_hold_posts_and_corrections_but_never_retractions(
    paced: tuple[Pacer, dict[str, Channel]],
) -> None:
    pacer, channels = paced
    night = local(SHANGHAI, 2026, 11, 20, 23, 30)
    for kind in (Kind.PUBLISH, Kind.CORRECTION):
        held = pacer.deferral(claim(1, "night", kind), channels["night"], now=night)
        assert held is not None and held.until == local(SHANGHAI, 2026, 11, 21, 7, 0)
        assert held.reason == "held: quiet hours until 07:00 Asia/Shanghai"
    assert pacer.deferral(claim(1, "night", Kind.RETRACT), channels["night"], now=night) is None
    noon = local(SHANGHAI, 2026, 11, 21, 12, 0)
    assert pacer.deferral(claim(1, "night"), channels["night"], now=noon) is None


def test_a_feed_is_never_held_even_if_configured_behind_the_loader(
    paced: tuple[Pacer, dict[str, Channel]], make_settings: Callable[..., Settings]
) -> None:
    pacer, _ = paced
    settings = make_settings(PUBLISHER_TIMEZONE="UTC")
    config = ChannelConfig.model_validate(
        {"name": "site", "type": "rss", "quiet_hours": "00:00-23:59"}
    )
    feed = build_channel(config, ChannelContext(settings))
    assert feed.is_feed
    assert pacer.deferral(claim(1, "site"), feed, now=utc(2026, 11, 20, 12, 0)) is None


def test_spacing_holds_the_second_post_on_the_account(
    paced: tuple[Pacer, dict[str, Channel]],
) -> None:
    pacer, channels = paced
    spaced = channels["spaced"]
    account = pacer.rules(spaced.config).account
    first = pacer.deferral(claim(1, "spaced"), spaced)
    # Its slot has come: the pacer says when it began, as the reservation recorded it.
    assert isinstance(first, Slot)
    assert spaced.context.redis is not None
    key = pacer.settings.key("slots", spaced.type_name, account)
    after = spaced.context.redis.hget(key, "a1")  # the next start the rule allows
    assert after is not None
    started = int(after) - 600_000_000
    assert first.started == datetime.fromtimestamp(started / 1_000_000, UTC)
    before = datetime.now(UTC)
    second = pacer.deferral(claim(2, "spaced"), spaced)
    assert isinstance(second, Deferral)
    assert 599 < (second.until - before).total_seconds() <= 601
    shown = second.until.astimezone(SHANGHAI)
    assert second.reason == (
        f"held: spacing on account {account} until {shown:%H:%M:%S} Asia/Shanghai"
    )
    # An in-place edit of a delivered post is not a new post; a removal is never held.
    edit = claim(3, "spaced", remote_id="42")
    assert pacer.deferral(edit, channels["spaced"]) is None
    assert pacer.deferral(claim(4, "spaced", Kind.RETRACT), channels["spaced"]) is None


def test_a_hold_placed_by_another_worker_is_seen_within_the_clear_window(
    make_settings: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    """An account with no rules of ours is read from Redis at most once per
    `CLEAR_FOR` seconds per process; a refusal in this process is seen at once."""
    settings = make_settings({"hook": {**HOOK, "account": uuid.uuid4().hex[:8]}})
    hook = build_channel(settings.channels["hook"], ChannelContext(settings, redis_client))
    ours, other = Pacer(settings), Pacer(settings)  # two worker processes
    assert ours.deferral(claim(1, "hook"), hook) is None
    other.refused(claim(2, "hook"), hook, RateLimitedError("rate limited", retry_after=60))
    assert ours.deferral(claim(3, "hook"), hook) is None  # still inside the window
    time.sleep(CLEAR_FOR + 0.05)
    held = ours.deferral(claim(3, "hook"), hook)
    assert isinstance(held, Deferral) and "the platform's rate limit" in held.reason
    # This process's own refusal: the next post waits at once.
    fresh = make_settings({"hook": {**HOOK, "account": uuid.uuid4().hex[:8]}})
    hook = build_channel(fresh.channels["hook"], ChannelContext(fresh, redis_client))
    pacer = Pacer(fresh)
    assert pacer.deferral(claim(4, "hook"), hook) is None
    pacer.refused(claim(5, "hook"), hook, RateLimitedError("rate limited", retry_after=60))
    assert isinstance(pacer.deferral(claim(6, "hook"), hook), Deferral)


# ---- the slots, against the machine's Redis --------------------------------------------


def slots(
    redis_client: redis.Redis, redis_prefix: str, spacing: float, burst: int = 1
) -> AccountSlots:
    key = f"{redis_prefix}slots:test:{uuid.uuid4().hex[:8]}"
    return AccountSlots(redis_client, key, [Rule(spacing, burst, "spacing")])


def test_many_threads_get_slots_at_least_the_spacing_apart(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    account = slots(redis_client, redis_prefix, 600)
    start = threading.Barrier(16)

    def ask(n: int) -> int:
        start.wait()
        return account.reserve(f"delivery:{n}").slot

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(ask, range(16)))
    got.sort()
    assert len(got) == 16
    assert all(b - a >= 600_000_000 for a, b in itertools.pairwise(got))
    assert got[-1] - got[0] == 15 * 600_000_000  # back to back: none wasted


def test_racing_workers_post_at_least_the_spacing_apart(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Each thread acts as a worker: ask, wait as told, ask again, until it may post."""
    account = slots(redis_client, redis_prefix, 0.2)
    start = threading.Barrier(6)
    posted: list[int] = []

    def worker(n: int) -> None:
        start.wait()
        while True:
            reservation = account.reserve(f"delivery:{n}")
            if reservation.wait == 0:
                posted.append(reservation.now)
                return
            time.sleep(reservation.wait)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted.sort()
    assert len(posted) == 6
    assert all(b - a >= 200_000 for a, b in itertools.pairwise(posted))


def test_a_waiting_holder_keeps_its_slot(redis_client: redis.Redis, redis_prefix: str) -> None:
    account = slots(redis_client, redis_prefix, 0.3)
    assert account.reserve("a").wait == 0
    b = account.reserve("b")
    assert 0.25 < b.wait <= 0.3
    assert account.reserve("b").slot == b.slot  # asking again does not lose the place
    c = account.reserve("c")
    assert c.slot - b.slot == 300_000
    time.sleep(b.wait)
    assert account.reserve("b").wait == 0  # its turn
    # "a" comes back (a retry after a failed post): a new slot, behind "c".
    assert account.reserve("a").slot == c.slot + 300_000
    ttl = redis_client.pttl(account.keys[0])
    assert 0 < ttl <= 3 * 300 + 60_000  # the key goes once no slot constrains anyone


def test_a_holder_that_comes_late_waits_for_the_gap_after_the_latest_post(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    account = slots(redis_client, redis_prefix, 0.2)
    account.reserve("a")
    b, c = account.reserve("b"), account.reserve("c")
    time.sleep(c.wait + 0.01)  # both slots have come; "c" is first to ask
    posted = account.reserve("c")
    assert posted.wait == 0
    late = account.reserve("b")
    assert late.slot == posted.now + 200_000 and late.slot > b.slot


# ---- the store's hold, on SQLite and PostgreSQL ------------------------------------


def test_a_hold_gives_the_attempt_back_and_logs_why(store: Store, channels: dict) -> None:
    article = parse_article({
        "id": "defer-1", "url": "https://news.example.org/d1", "title": "Deferred",
        "body_html": "<p>Body.</p>", "published_at": "2026-11-20T08:30:00+08:00",
    })  # fmt: skip
    delivery_id = publishing.publish(article, store, channels).to_enqueue[0].delivery_id
    now = datetime.now(UTC)
    taken = store.claim(delivery_id, 60, now=now)
    assert taken is not None and taken.attempt == 1
    until = now + timedelta(hours=2)
    reason = "held: quiet hours until 07:00 Asia/Shanghai"

    stale = replace(taken, token="someone-else")
    assert not store.hold(stale, until=until, reason=reason)
    assert store.hold(taken, until=until, reason=reason, armed=False)

    row = store.delivery(delivery_id)
    assert (row.state, row.attempts, row.last_error) == (State.HELD, 0, reason)
    assert row.next_attempt_at is not None
    assert abs((row.next_attempt_at.replace(tzinfo=UTC) - until).total_seconds()) < 1e-3
    assert [(a.outcome, a.number, a.message) for a in store.attempts(delivery_id)] == [
        ("held", 0, reason)
    ]
    assert not store.hold(taken, until=until, reason=reason)  # the lease is gone
    # Not before its time; then the sweeper releases it (nothing was armed) and the
    # next claim is attempt 1 again.
    assert store.claim(delivery_id, 60, now=until - timedelta(seconds=1)) is None
    assert delivery_id not in {e.delivery_id for e in store.collect_due(requeue_after=30, now=now)}
    due = store.collect_due(requeue_after=30, now=until)
    assert delivery_id in {e.delivery_id for e in due}
    again = store.claim(delivery_id, 60, now=until)
    assert again is not None and again.attempt == 1


# ---- the engine: a countdown for a short wait, the sweeper for a long one ---------------


class RecordingDispatcher:
    def __init__(self) -> None:
        self.enqueued: list[Enqueue] = []

    def enqueue(self, items: Any) -> int:
        self.enqueued.extend(items)
        return len(self.enqueued)

    def notify(self, ids: Any, countdown: float = 0.0) -> int:
        return 0

    def request_feed_rebuilds(self, channels: list[str]) -> list[str]:
        return []


def window_around_now(zone: ZoneInfo, *, before: float, after: float) -> str:
    now = datetime.now(zone)
    start, end = now - timedelta(seconds=before), now + timedelta(seconds=after)
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}"


def test_the_engine_arms_a_short_wait_and_leaves_a_long_one_to_the_sweeper(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        {
            "short": {**HOOK, "quiet_hours": window_around_now(SHANGHAI, before=60, after=300)},
            "long": {**HOOK, "quiet_hours": window_around_now(SHANGHAI, before=60, after=7200)},
        },
        PUBLISHER_TIMEZONE="Asia/Shanghai",
    )
    store = Store(f"sqlite:///{tmp_path / 'engine.db'}")
    store.migrate()
    channels = {n: build_channel(c, ChannelContext(settings)) for n, c in settings.channels.items()}
    dispatcher = RecordingDispatcher()
    engine = DeliveryEngine(settings, store, channels, cast(Dispatcher, dispatcher))
    items = publishing.publish(hook_article(1), store, channels).to_enqueue

    assert [engine.deliver(item.delivery_id) for item in items] == ["held", "held"]

    by_channel = {store.delivery(i.delivery_id).channel: i.delivery_id for i in items}
    (armed,) = dispatcher.enqueued
    assert armed.delivery_id == by_channel["short"] and 290 < armed.countdown <= 300
    assert store.delivery(by_channel["long"]).enqueued_at is None  # the sweeper's
    for delivery_id in by_channel.values():
        row = store.delivery(delivery_id)
        assert row.state == State.HELD and row.attempts == 0
    store.dispose()


# ---- end to end through a real worker --------------------------------------------------


def test_spacing_on_one_account_through_a_real_worker(
    make_stack: Callable[..., Stack],  # noqa: F811
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    """The promise is about when posts start, on the clock every worker shares
    (Redis's), so that is what is measured: the slot starts the reservations
    handed out, as the attempt log records them. Both sides of the comparison
    are whole microseconds of one clock, so no margin is needed; arrival times
    at the receiver add the network's and the scheduler's noise, and are not
    what is promised."""
    rec, url = receiver
    stack = make_stack({"hook": {"type": "webhook", "base_url": url, "min_spacing": 1}})
    stack.start_worker()
    ids = [stack.runtime.publish(hook_article(n)).article_id for n in (1, 2, 3)]
    stack.wait_settled(ids)

    assert len(rec.posts) == 3
    starts: list[datetime] = []
    held = 0
    for delivery in stack.runtime.store.deliveries(article_ids=ids):
        assert delivery.state == State.DELIVERED and delivery.attempts == 1
        log = stack.runtime.store.attempts(delivery.id)
        assert log[-1].outcome == "delivered" and log[-1].number == 1
        starts.append(log[-1].started_at)
        for entry in log[:-1]:
            assert entry.outcome == "held" and entry.number == 0
            assert entry.message is not None
            assert entry.message.startswith("held: spacing on account hook until ")
        held += len(log) - 1
    starts.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    print(f"gaps between the posts' slot starts (s): {gaps}")
    assert all(gap >= 1.0 for gap in gaps), starts
    assert held >= 2  # the second and the third waited for their slots


def test_quiet_hours_hold_a_delivery_through_a_real_worker_until_they_end(
    make_stack: Callable[..., Stack],  # noqa: F811
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    rec, url = receiver
    hold = 8.0  # the worker must start and claim it before the window ends
    ends = datetime.now(SHANGHAI).replace(microsecond=0) + timedelta(seconds=hold)
    window = f"{ends - timedelta(hours=1):%H:%M:%S}-{ends:%H:%M:%S}"
    stack = make_stack(
        {"hook": {"type": "webhook", "base_url": url, "quiet_hours": window,
                  "timezone": "Asia/Shanghai"}}
    )  # fmt: skip
    stack.start_worker()
    article_id = stack.runtime.publish(hook_article(9)).article_id
    store = stack.runtime.store

    stack.wait_until(lambda: bool(store.attempts(store.deliveries(article_ids=[article_id])[0].id)))
    (waiting,) = store.deliveries(article_ids=[article_id])
    # 22:12 on a whole minute, 22:12:05 otherwise: the channel's wall clock, as shown
    reason = f"held: quiet hours until {QuietHours.parse(window, 'Asia/Shanghai').wall(ends)}"
    assert datetime.now(SHANGHAI) < ends, "the worker took too long to start"
    assert (waiting.state, waiting.attempts, waiting.last_error) == (State.HELD, 0, reason)
    assert [(a.outcome, a.message) for a in store.attempts(waiting.id)] == [("held", reason)]
    assert rec.posts == {}

    stack.wait_settled([article_id], timeout=hold + 30)
    (sent,) = store.deliveries(article_ids=[article_id])
    assert sent.state == State.DELIVERED and sent.attempts == 1
    assert [a.outcome for a in store.attempts(sent.id)] == ["held", "delivered"]
    assert store.attempts(sent.id)[1].started_at.replace(tzinfo=UTC) >= ends
    assert len(rec.posts) == 1
