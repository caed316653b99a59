"""The dispatcher against the machine's Redis: coalesced rebuilds and batched fan-out.

No worker runs here: what reaches the broker is read straight from the
queues (kombu keeps each as a Redis list), so every count is exact.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from publisher.config.settings import Settings
from publisher.store import Enqueue
from publisher.worker.celery_app import CONTROL_QUEUE, configure_celery
from publisher.worker.dispatch import Dispatcher
from tests.conftest import TEST_REDIS_URL

MATRIX = {
    "site": {"type": "rss"},
    "app": {"type": "app_feed"},
    "hook": {"type": "webhook", "base_url": "http://127.0.0.1:9/hook"},
}


# Leases and spacing far longer than any test, so that what a test asserts about
# state holds however slowly a loaded machine runs it; the few tests about time
# passing take `quick` timings and assert only in the direction slowness cannot break.
SLOW = {"lease": 60.0, "spacing": 30.0}
QUICK = {"lease": 2.0, "spacing": 0.3}


@pytest.fixture
def make_dispatcher(
    make_settings: Callable[..., Settings], redis_prefix: str
) -> Iterator[Callable[[dict[str, float]], Dispatcher]]:
    clients: list[redis.Redis] = []

    def make(timings: dict[str, float]) -> Dispatcher:
        settings = make_settings(
            channels=MATRIX,
            REDIS_URL=TEST_REDIS_URL,
            PUBLISHER_REDIS_PREFIX=f"{redis_prefix}{uuid.uuid4().hex[:8]}:",
            PUBLISHER_FEED_REBUILD_LEASE=str(timings["lease"]),
            PUBLISHER_FEED_REBUILD_SPACING=str(timings["spacing"]),
            PUBLISHER_DRAIN_LEASE=str(timings["lease"]),
        )
        client = redis.Redis.from_url(TEST_REDIS_URL)
        clients.append(client)
        return Dispatcher(configure_celery(settings), client, settings)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def dispatcher(make_dispatcher: Callable[[dict[str, float]], Dispatcher]) -> Dispatcher:
    return make_dispatcher(SLOW)


@pytest.fixture
def quick(make_dispatcher: Callable[[dict[str, float]], Dispatcher]) -> Dispatcher:
    return make_dispatcher(QUICK)


def queued(d: Dispatcher, queue: str) -> list[tuple[str, list[object]]]:
    """(task name, args) of every message waiting on a queue, oldest first."""
    key = d.settings.redis_prefix + "celery:" + queue
    messages = [json.loads(raw) for raw in reversed(d.redis.lrange(key, 0, -1))]
    out = []
    for m in messages:
        body = json.loads(base64.b64decode(m["body"]))
        out.append((m["headers"]["task"], body[0]))
    return out


def etas(d: Dispatcher) -> list[str | None]:
    raw = d.redis.lrange(d.settings.redis_prefix + "celery:" + CONTROL_QUEUE, 0, -1)
    return [json.loads(m)["headers"]["eta"] for m in reversed(raw)]  # oldest first


MS = timedelta(milliseconds=1)  # Redis counts what is left of a lease in whole ms


def eta_of_last(d: Dispatcher) -> datetime:
    """The due time of the newest control task, which must have one."""
    eta = etas(d)[-1]
    assert eta is not None
    return datetime.fromisoformat(eta)


def rebuilds(d: Dispatcher) -> list[object]:
    return [args[0] for task, args in queued(d, CONTROL_QUEUE) if task == "publisher.rebuild_feed"]


def test_an_idle_channel_rebuilds_at_once_and_a_queued_rebuild_covers_later_requests(
    dispatcher: Dispatcher,
) -> None:
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]
    assert dispatcher.request_feed_rebuilds(["site"]) == []
    assert dispatcher.request_feed_rebuilds(["app"]) == ["app"]
    assert sorted(map(str, rebuilds(dispatcher))) == ["app", "site"]
    assert etas(dispatcher) == [None, None]  # leading edge: no debounce delay


def test_requests_during_a_rebuild_fold_into_one_follow_up(dispatcher: Dispatcher) -> None:
    dispatcher.request_feed_rebuilds(["site"])
    token = dispatcher.rebuild_started("site")
    assert token is not None
    for _ in range(50):  # a burst while it runs: no task of its own
        assert dispatcher.request_feed_rebuilds(["site"]) == []
    assert dispatcher.rebuild_finished("site", token) is True  # one follow-up for all 50
    assert len(rebuilds(dispatcher)) == 2
    first, follow_up = etas(dispatcher)
    assert first is None and follow_up is not None  # due once the spacing is over
    assert dispatcher.request_feed_rebuilds(["site"]) == []  # the follow-up covers it
    second = dispatcher.rebuild_started("site")
    assert second is not None
    assert dispatcher.rebuild_finished("site", second) is False  # nothing new
    # A request just after the burst's last round is still the burst: it waits
    # out the spacing (a publisher held up by that round's commit asks just then).
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]
    assert etas(dispatcher)[-1] is not None


def test_once_the_spacing_is_over_a_request_goes_at_once(quick: Dispatcher) -> None:
    token = quick.rebuild_started("site")
    assert token is not None
    assert quick.rebuild_finished("site", token, covered=40) is False  # a busy round
    time.sleep(quick.settings.feed_rebuild_spacing + 0.05)
    assert quick.request_feed_rebuilds(["site"]) == ["site"]
    assert etas(quick) == [None]  # the burst is over: idle again


def test_a_quiet_rebuild_leaves_the_next_request_immediate(dispatcher: Dispatcher) -> None:
    token = dispatcher.rebuild_started("site")
    assert token is not None
    assert dispatcher.rebuild_finished("site", token, covered=1) is False
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]
    assert etas(dispatcher) == [None]


def test_a_request_just_after_a_busy_rebuild_waits_out_the_spacing(
    dispatcher: Dispatcher,
) -> None:
    """What a burst under SQLite looks like: the publisher waits on the rebuild's
    commit, so its request comes just after the round, not during it."""
    spacing = timedelta(seconds=dispatcher.settings.feed_rebuild_spacing)
    token = dispatcher.rebuild_started("site")
    assert token is not None
    before_end = datetime.now(UTC)
    assert dispatcher.rebuild_finished("site", token, covered=40) is False  # none during it
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]
    asked = datetime.now(UTC)
    # Due when the spacing after the round's end is over, however long the ask took.
    assert before_end + spacing - MS <= eta_of_last(dispatcher) <= asked + spacing
    assert dispatcher.request_feed_rebuilds(["site"]) == []  # that task covers the rest


def test_after_a_quiet_round_the_follow_up_is_due_at_once(dispatcher: Dispatcher) -> None:
    """An idle publish that meets the end of the previous round is not held for the
    spacing: that is for bursts, and a round that covered one item was none."""
    token = dispatcher.rebuild_started("site")
    assert token is not None
    dispatcher.request_feed_rebuilds(["site"])  # arrives while the round finishes
    assert dispatcher.rebuild_finished("site", token, covered=1) is True
    assert etas(dispatcher) == [None]
    busy = dispatcher.rebuild_started("site")
    assert busy is not None
    dispatcher.request_feed_rebuilds(["site"])
    assert dispatcher.rebuild_finished("site", busy, covered=40) is True
    assert etas(dispatcher)[-1] is not None  # a burst's follow-up waits for the spacing


def test_a_quiet_round_that_was_itself_a_follow_up_spaces_the_next(
    dispatcher: Dispatcher,
) -> None:
    """Rounds quick enough to cover one item each, with requests through every one
    of them, are a burst: only the first follow-up goes at once."""
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]
    first = dispatcher.rebuild_started("site")  # started by the request
    assert first is not None
    dispatcher.request_feed_rebuilds(["site"])
    assert dispatcher.rebuild_finished("site", first, covered=1) is True
    assert etas(dispatcher)[-1] is None  # the request met a quiet round's end
    second = dispatcher.rebuild_started("site")  # the follow-up
    assert second is not None
    dispatcher.request_feed_rebuilds(["site"])
    assert dispatcher.rebuild_finished("site", second, covered=1) is True
    assert etas(dispatcher)[-1] is not None  # requests keep coming: spaced
    third = dispatcher.rebuild_started("site")
    assert third is not None
    assert dispatcher.rebuild_finished("site", third, covered=1) is False  # the burst is over
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]  # idle again: at once
    fourth = dispatcher.rebuild_started("site")
    assert fourth is not None
    dispatcher.request_feed_rebuilds(["site"])
    assert dispatcher.rebuild_finished("site", fourth, covered=1) is True
    assert etas(dispatcher)[-1] is None


def test_the_follow_up_waits_for_the_spacing(dispatcher: Dispatcher) -> None:
    spacing = timedelta(seconds=dispatcher.settings.feed_rebuild_spacing)
    token = dispatcher.rebuild_started("site")
    assert token is not None
    dispatcher.request_feed_rebuilds(["site"])
    before_end = datetime.now(UTC)
    assert dispatcher.rebuild_finished("site", token) is True
    ended = datetime.now(UTC)
    assert before_end + spacing - MS <= eta_of_last(dispatcher) <= ended + spacing


def test_a_second_worker_folds_its_rebuild_into_the_running_one(dispatcher: Dispatcher) -> None:
    first = dispatcher.rebuild_started("site")
    assert first is not None
    assert dispatcher.rebuild_started("site") is None  # another worker's task: folded
    assert dispatcher.rebuild_finished("site", first) is True  # into one follow-up
    assert dispatcher.rebuild_finished("site", first) is False  # released already
    assert len(rebuilds(dispatcher)) == 1


def test_a_killed_rebuild_blocks_nothing_beyond_its_lease(quick: Dispatcher) -> None:
    dead = quick.rebuild_started("site")  # its worker dies: it never finishes
    assert dead is not None
    assert quick.request_feed_rebuilds(["site"]) == []
    time.sleep(QUICK["lease"] + 0.1)  # its lease runs out
    assert quick.request_feed_rebuilds(["site"]) == ["site"]  # the sweeper's next ask
    taken = quick.rebuild_started("site")
    assert taken is not None
    assert quick.rebuild_finished("site", dead) is False  # the ghost changes nothing
    # The request folded into the dead rebuild still gets its follow-up.
    assert quick.rebuild_finished("site", taken) is True


def test_a_failed_round_releases_the_channel(dispatcher: Dispatcher) -> None:
    token = dispatcher.rebuild_started("site")
    assert token is not None
    dispatcher.rebuild_abandoned("site", token)
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]


def test_fan_out_sends_one_drain_per_channel_type_and_one_rebuild_per_feed(
    dispatcher: Dispatcher,
) -> None:
    items = [Enqueue(i, "webhook") for i in range(1, 201)]
    items += [Enqueue(1000 + i, kind) for i in range(100) for kind in ("rss", "app_feed")]

    assert dispatcher.enqueue(items) == 400

    # 200 remote deliveries due now: one drain of their type, not 200 tasks.
    assert queued(dispatcher, "deliver.webhook") == [("publisher.drain", ["webhook"])]
    assert queued(dispatcher, "deliver.rss") == queued(dispatcher, "deliver.app_feed") == []
    assert sorted(map(str, rebuilds(dispatcher))) == ["app", "site"]


def test_deliveries_due_later_are_countdown_tasks_in_one_batch(dispatcher: Dispatcher) -> None:
    items = [Enqueue(i, "webhook", countdown=30.0) for i in range(1, 101)]
    with dispatcher.celery.producer_or_acquire() as producer:
        assert producer.supports_batch_publish  # kombu will pipeline on this broker

    assert dispatcher.enqueue(items) == 100

    sent = queued(dispatcher, "deliver.webhook")
    assert {task for task, _ in sent} == {"publisher.deliver"}
    assert sorted(args[0] for _, args in sent) == list(range(1, 101))  # type: ignore[type-var]


def test_drains_run_side_by_side_up_to_their_limit_and_fold_the_rest(
    dispatcher: Dispatcher,
) -> None:
    drains = dispatcher.drains
    assert drains.parallel == 2
    assert dispatcher.request_drains(["webhook"]) == ["webhook"]
    assert dispatcher.request_drains(["webhook"]) == ["webhook"]  # covered by the queued one
    first = drains.started("webhook")
    assert first is not None
    dispatcher.request_drains(["webhook"])  # a place is free: a second drain
    second = drains.started("webhook")
    assert second is not None
    assert drains.started("webhook") is None  # a third finds both places taken: folded
    for _ in range(20):
        dispatcher.request_drains(["webhook"])  # no task of their own
    assert len(queued(dispatcher, "deliver.webhook")) == 2
    assert drains.finished("webhook", first) is not None  # one follow-up covers them all
    assert drains.finished("webhook", second) is None
    assert drains.finished("webhook", second) is None  # released already


def test_a_drain_that_stops_with_work_left_gets_a_follow_up(dispatcher: Dispatcher) -> None:
    token = dispatcher.drains.started("webhook")
    assert token is not None
    assert dispatcher.drains.finished("webhook", token, more=True) is not None


def test_a_killed_drain_frees_its_place_when_its_lease_ends(quick: Dispatcher) -> None:
    drains = quick.drains
    live = drains.started("webhook")
    dead = drains.started("webhook")  # its worker dies: it never finishes
    assert live is not None and dead is not None
    assert drains.started("webhook") is None  # both places taken
    for _ in range(3):  # past the lease of the one not renewed; the live one is
        time.sleep(QUICK["lease"] * 0.35)  # renewed with most of its lease to spare
        assert drains.renew("webhook", live) is True  # a live drain keeps its place
    assert drains.renew("webhook", dead) is False  # no renewal: its lease ran out
    assert drains.started("webhook") is not None  # its place is free again
    assert drains.started("webhook") is None


def test_a_scheduled_feed_item_gets_a_rebuild_when_it_is_due(dispatcher: Dispatcher) -> None:
    dispatcher.enqueue([Enqueue(7, "rss", countdown=30.0)])
    (eta,) = etas(dispatcher)
    assert eta is not None
    assert dispatcher.request_feed_rebuilds(["site"]) == ["site"]  # not held back by it
