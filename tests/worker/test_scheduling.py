"""Scheduling: local times in IANA zones (DST-safe), storing instants, releasing on
the second through real workers, rescheduling and cancelling.

The clock is controlled where it matters: parsing never reads it, and the store
takes `now=` for publishing, claiming, arming and sweeping, so the schedules
below sit around the 2026 daylight-saving changes whatever today's date is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from channels.base import Channel
from publisher.config.settings import Settings
from publisher.delivery import publishing
from publisher.domain.article import Article, load_article_file, parse_article
from publisher.domain.errors import ConfigError, InputError
from publisher.domain.states import State
from publisher.local.cluster import Stack
from publisher.store import Store
from publisher.web.api import create_app
from sandbox.server import BackgroundServer
from tests.conftest import SAMPLES, TEST_REDIS_URL, write_matrix

NEW_YORK = "America/New_York"
BASE: dict[str, Any] = {
    "id": "sched-1",
    "url": "https://news.example.org/sched-1.html",
    "title": "Scheduled story",
    "body_html": "<p>Body.</p>",
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def article(**change: Any) -> Article:
    return parse_article({**BASE, **change})


# -- reading local times in a zone ---------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "instant"),
    [
        # New York, spring forward on 2026-03-08: 02:00 EST becomes 03:00 EDT.
        (NEW_YORK, "2026-03-08T01:59:59", utc(2026, 3, 8, 6, 59, 59)),
        (NEW_YORK, "2026-03-08T03:00:00", utc(2026, 3, 8, 7, 0)),
        # Fall back on 2026-11-01: 02:00 EDT becomes 01:00 EST.
        (NEW_YORK, "2026-11-01T00:59:59", utc(2026, 11, 1, 4, 59, 59)),
        (NEW_YORK, "2026-11-01T02:00:00", utc(2026, 11, 1, 7, 0)),
        # Shanghai has no DST: the same wall time is always +08:00.
        ("Asia/Shanghai", "2026-03-08T02:30:00", utc(2026, 3, 7, 18, 30)),
        ("Asia/Shanghai", "2026-11-01T01:30:00", utc(2026, 10, 31, 17, 30)),
        # London: GMT in winter, BST (+01:00) from 2026-03-29 to 2026-10-25.
        ("Europe/London", "2026-01-15T09:00:00", utc(2026, 1, 15, 9, 0)),
        ("Europe/London", "2026-03-29T02:00:00", utc(2026, 3, 29, 1, 0)),
        ("Europe/London", "2026-07-01T09:00:00", utc(2026, 7, 1, 8, 0)),
    ],
)
def test_a_local_time_is_read_in_the_articles_zone(
    zone: str, local: str, instant: datetime
) -> None:
    parsed = article(timezone=zone, publish_at=local, published_at=local)
    assert parsed.publish_at == instant and parsed.published_at == instant
    assert parsed.publish_at is not None and parsed.publish_at.utcoffset() is not None
    assert parsed.timezone == zone
    # What is stored says the wall time and its offset: unambiguous on its own.
    stored = Article.from_json(parsed.to_json())
    assert stored.publish_at == instant
    assert stored.to_json()["publish_at"].startswith(local)


@pytest.mark.parametrize(
    ("zone", "local", "offsets"),
    [
        (NEW_YORK, "2026-03-08T02:00:00", ("-05:00", "-04:00")),
        (NEW_YORK, "2026-03-08T02:30:00", ("-05:00", "-04:00")),
        (NEW_YORK, "2026-03-08T02:59:59", ("-05:00", "-04:00")),
        ("Europe/London", "2026-03-29T01:30:00", ("+00:00", "+01:00")),
    ],
)
def test_a_time_the_clocks_skip_is_refused_with_the_offsets_to_choose(
    zone: str, local: str, offsets: tuple[str, str]
) -> None:
    with pytest.raises(InputError) as caught:
        article(timezone=zone, publish_at=local)
    assert caught.value.field == "publish_at"
    problem = caught.value.problem
    assert f"{local} does not exist in {zone}" in problem
    assert f"{local}{offsets[0]}" in problem and f"{local}{offsets[1]}" in problem


@pytest.mark.parametrize(
    ("zone", "local", "offsets"),
    [
        (NEW_YORK, "2026-11-01T01:00:00", ("-04:00", "-05:00")),
        (NEW_YORK, "2026-11-01T01:30:00", ("-04:00", "-05:00")),
        (NEW_YORK, "2026-11-01T01:59:59", ("-04:00", "-05:00")),
        ("Europe/London", "2026-10-25T01:30:00", ("+01:00", "+00:00")),
    ],
)
def test_a_time_the_clocks_show_twice_is_refused_not_guessed(
    zone: str, local: str, offsets: tuple[str, str]
) -> None:
    with pytest.raises(InputError) as caught:
        article(timezone=zone, published_at=local)
    assert caught.value.field == "published_at"
    assert f"{local} is ambiguous in {zone}" in caught.value.problem
    assert f"({local}{offsets[0]} or {local}{offsets[1]})" in caught.value.problem


def test_an_explicit_offset_settles_the_fold_whatever_the_zone() -> None:
    first = article(timezone=NEW_YORK, publish_at="2026-11-01T01:30:00-04:00")
    second = article(timezone=NEW_YORK, publish_at="2026-11-01T01:30:00-05:00")
    assert first.publish_at == utc(2026, 11, 1, 5, 30)
    assert second.publish_at == utc(2026, 11, 1, 6, 30)


def test_the_newsroom_default_applies_unless_the_article_names_a_zone() -> None:
    by_default = parse_article(
        {**BASE, "publish_at": "2026-07-01T09:00"}, default_timezone=NEW_YORK
    )
    assert by_default.publish_at == utc(2026, 7, 1, 13, 0) and by_default.timezone is None
    own = parse_article(
        {**BASE, "publish_at": "2026-07-01T09:00", "timezone": "Asia/Shanghai"},
        default_timezone=NEW_YORK,
    )
    assert own.publish_at == utc(2026, 7, 1, 1, 0) and own.timezone == "Asia/Shanghai"
    with pytest.raises(InputError, match="does not exist in America/New_York"):
        parse_article({**BASE, "publish_at": "2026-03-08T02:30"}, default_timezone=NEW_YORK)


def test_without_any_zone_a_naive_time_is_still_refused() -> None:
    with pytest.raises(InputError) as caught:
        article(publish_at="2026-07-01T09:00")
    assert caught.value.field == "publish_at"
    assert caught.value.problem.startswith("has no time zone; add an offset such as +08:00 or Z")
    assert "timezone" in caught.value.problem


BAD_ZONES = ["Mars/Olympus_Mons", "asia/shanghai", "/etc/passwd", "../../etc/passwd",
             "localtime", "+08:00", 8, ["UTC"]]  # fmt: skip


@pytest.mark.parametrize("zone", BAD_ZONES)
def test_an_unknown_zone_is_refused_naming_the_field(zone: Any) -> None:
    with pytest.raises(InputError) as caught:
        article(timezone=zone, publish_at="2026-07-01T09:00")
    assert caught.value.field == "timezone"
    assert "IANA time zone name" in caught.value.problem


def test_a_zone_is_scheduling_not_content() -> None:
    plain = article(published_at="2026-07-01T09:00:00+08:00")
    zoned = article(published_at="2026-07-01T09:00", timezone="Asia/Shanghai")
    moved = article(published_at="2026-07-01T09:00", timezone="Asia/Tokyo")
    assert plain.content_hash() == zoned.content_hash() != moved.content_hash()


def test_front_matter_local_times_use_the_files_zone(tmp_path: Path) -> None:
    path = tmp_path / "story.md"
    path.write_text(
        "---\nid: fm-1\nurl: https://news.example.org/fm-1\ntitle: T\n"
        "timezone: Europe/London\npublish_at: 2026-07-01 09:00:00\n---\nBody.\n"
    )
    assert load_article_file(path).publish_at == utc(2026, 7, 1, 8, 0)
    # The CLI's --tz replaces the file's zone.
    assert load_article_file(path, timezone=NEW_YORK).publish_at == utc(2026, 7, 1, 13, 0)


# -- the newsroom's zone in settings --------------------------------------------------


def newsroom_settings(tmp_path: Path, newsroom: str, **env: str) -> Settings:
    matrix = write_matrix(tmp_path / "matrix.toml", {"site": {"type": "rss"}}, {"title": "T"})
    matrix.write_text(matrix.read_text() + newsroom)
    return Settings.load(
        {"PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(tmp_path), **env}
    )


def test_settings_take_the_zone_from_the_matrix_or_the_environment(tmp_path: Path) -> None:
    assert newsroom_settings(tmp_path, "").timezone is None
    assert newsroom_settings(tmp_path, '[newsroom]\ntimezone = "Asia/Shanghai"\n').timezone == (
        "Asia/Shanghai"
    )
    from_env = newsroom_settings(
        tmp_path, '[newsroom]\ntimezone = "Asia/Shanghai"\n', PUBLISHER_TIMEZONE=NEW_YORK
    )
    assert from_env.timezone == NEW_YORK


@pytest.mark.parametrize(
    ("newsroom", "env", "message"),
    [
        ('[newsroom]\ntimezone = "Mars/Base"\n', {}, "[newsroom] timezone: 'Mars/Base' is not"),
        ("", {"PUBLISHER_TIMEZONE": "CST"}, "PUBLISHER_TIMEZONE: 'CST' is not an IANA"),
        ('[newsroom]\ntime_zone = "UTC"\n', {}, "[newsroom] time_zone: unknown setting"),
        ("[newsroom]\ntimezone = 8\n", {}, "[newsroom] timezone: must be an IANA"),
    ],
)
def test_a_bad_newsroom_zone_stops_the_process(
    tmp_path: Path, newsroom: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        newsroom_settings(tmp_path, newsroom, **env)


# -- the store: instants, claims, rescheduling, cancelling (controlled clock) ---------


def released(store: Store, when: datetime) -> set[str]:
    """Articles whose deliveries the sweeper releases (or re-enqueues) at `when`."""
    due = store.collect_due(requeue_after=3600, now=when)
    return {store.delivery(e.delivery_id).article_id for e in due}


def test_a_schedule_across_spring_forward_is_released_at_its_instant(
    store: Store, channels: dict[str, Channel]
) -> None:
    """01:00 EST to 03:00 EDT reads as two hours on the wall clock; it is one."""
    now = utc(2026, 3, 8, 6, 0)  # 01:00 EST
    at = article(timezone=NEW_YORK, publish_at="2026-03-08T03:00:00")
    result = store.publish(at, publishing.plan(at, list(channels.values())), now=now)
    assert result.to_enqueue == []
    rows = store.deliveries(article_ids=["sched-1"])
    assert {d.state for d in rows} == {State.SCHEDULED}
    assert {d.publish_at for d in rows} == {utc(2026, 3, 8, 7, 0)}
    assert released(store, utc(2026, 3, 8, 6, 59, 59)) == set()
    assert released(store, utc(2026, 3, 8, 7, 0)) == {"sched-1"}


def test_a_schedule_in_the_fold_is_released_at_the_offset_given(
    store: Store, channels: dict[str, Channel]
) -> None:
    now = utc(2026, 11, 1, 4, 30)  # 00:30 EDT
    second = article(publish_at="2026-11-01T01:30:00-05:00")  # the second 01:30 (EST)
    store.publish(second, publishing.plan(second, list(channels.values())), now=now)
    assert released(store, utc(2026, 11, 1, 5, 30)) == set()  # the first 01:30 (EDT)
    assert released(store, utc(2026, 11, 1, 6, 30)) == {"sched-1"}


def test_times_with_any_offset_are_stored_as_the_same_instant(
    store: Store, channels: dict[str, Channel]
) -> None:
    """SQLite keeps no offset: a +08:00 time must not come back 8 hours off."""
    now = utc(2026, 7, 1, 0, 0)
    same_instant = [
        ("Asia/Shanghai", "2026-07-01T09:00"), (NEW_YORK, "2026-06-30T21:00"),
        ("UTC", "2026-07-01T01:00"),
    ]  # fmt: skip
    for n, (zone, local) in enumerate(same_instant):
        at = article(id=f"inst-{n}", timezone=zone, publish_at=local)
        store.publish(at, publishing.plan(at, [channels["site"]]), now=now)
    rows = store.deliveries(article_ids=["inst-0", "inst-1", "inst-2"])
    assert {d.publish_at for d in rows} == {utc(2026, 7, 1, 1, 0)}
    assert {d.next_attempt_at for d in rows} == {utc(2026, 7, 1, 1, 0)}
    assert released(store, utc(2026, 7, 1, 0, 59, 59)) == set()
    assert released(store, utc(2026, 7, 1, 1, 0)) == {"inst-0", "inst-1", "inst-2"}


def test_a_scheduled_delivery_is_claimable_only_once_due(
    store: Store, channels: dict[str, Channel]
) -> None:
    now = utc(2026, 7, 1, 0, 0)
    at = article(publish_at="2026-07-01T00:00:10Z")
    store.publish(at, publishing.plan(at, [channels["site"]]), now=now)
    (delivery,) = store.deliveries(article_ids=["sched-1"])
    assert store.claim(delivery.id, 60, now=now + timedelta(seconds=9.999)) is None
    assert store.delivery(delivery.id).state == State.SCHEDULED
    claim = store.claim(delivery.id, 60, now=now + timedelta(seconds=10))
    assert claim is not None and claim.attempt == 1 and not claim.outcome_unknown
    assert store.delivery(delivery.id).state == State.SENDING
    assert store.claim(delivery.id, 60, now=now + timedelta(seconds=11)) is None  # once


def test_schedules_are_armed_once_shortly_before_they_are_due(
    store: Store, channels: dict[str, Channel]
) -> None:
    now = utc(2026, 7, 1, 0, 0)
    for n, seconds in enumerate((5, 50, 3600)):
        at = article(id=f"arm-{n}", publish_at=(now + timedelta(seconds=seconds)).isoformat())
        store.publish(at, publishing.plan(at, [channels["site"]]), now=now)
    armed = store.arm_schedules(within=60, now=now)
    assert sorted(round(e.countdown, 3) for e in armed) == [5.0, 50.0]
    assert store.arm_schedules(within=60, now=now + timedelta(seconds=1)) == []  # once
    later = store.arm_schedules(within=60, now=now + timedelta(seconds=3550))
    assert [round(e.countdown, 3) for e in later] == [50.0]
    only = store.arm_schedules(within=7200, article_id="arm-0", now=now)
    assert only == []  # armed already; and other articles are left alone
    assert store.deliveries(article_ids=["arm-2"])[0].enqueued_at is not None


def test_reposting_with_another_time_reschedules_without_a_new_version(
    store: Store, channels: dict[str, Channel]
) -> None:
    now = utc(2026, 7, 1, 0, 0)
    plans = lambda a: publishing.plan(a, list(channels.values()))  # noqa: E731
    first = article(timezone=NEW_YORK, publish_at="2026-07-01T09:00")  # 13:00Z
    store.publish(first, plans(first), now=now)
    store.arm_schedules(within=60 * 60 * 24, now=now)

    moved = article(timezone="Asia/Shanghai", publish_at="2026-07-01T23:00")  # 15:00Z
    result = store.publish(moved, plans(moved), now=now + timedelta(minutes=1))
    assert not result.changed and result.rescheduled and result.version == 1
    assert result.to_enqueue == []
    rows = store.deliveries(article_ids=["sched-1"])
    assert {(d.state, d.publish_at, d.next_attempt_at) for d in rows} == {
        (State.SCHEDULED, utc(2026, 7, 1, 15, 0), utc(2026, 7, 1, 15, 0))
    }
    assert {d.enqueued_at for d in rows} == {None}  # to be armed for the new time
    _, stored, _ = store.article("sched-1")
    assert stored.publish_at == utc(2026, 7, 1, 15, 0) and stored.timezone == "Asia/Shanghai"
    assert released(store, utc(2026, 7, 1, 13, 0)) == set()  # the old time passes quietly
    assert store.claim(rows[0].id, 60, now=utc(2026, 7, 1, 13, 0)) is None
    assert store.publish(moved, plans(moved), now=now + timedelta(minutes=2)).to_enqueue == []
    assert released(store, utc(2026, 7, 1, 15, 0)) == {"sched-1"}


def test_reposting_without_a_time_releases_the_schedule_now(
    store: Store, channels: dict[str, Channel]
) -> None:
    now = utc(2026, 7, 1, 0, 0)
    at = article(publish_at="2026-07-02T00:00:00Z")
    store.publish(at, publishing.plan(at, list(channels.values())), now=now)
    result = store.publish(article(), publishing.plan(article(), list(channels.values())), now=now)
    assert not result.changed and len(result.to_enqueue) == 2
    assert {d.state for d in store.deliveries(article_ids=["sched-1"])} == {State.PENDING}
    row, stored, _ = store.article("sched-1")
    assert stored.publish_at is None and row.published_at == now


def test_a_released_delivery_is_not_rescheduled(store: Store, channels: dict[str, Channel]) -> None:
    now = utc(2026, 7, 1, 0, 0)
    at = article(publish_at="2026-07-01T00:00:10Z")
    store.publish(at, publishing.plan(at, [channels["site"]]), now=now)
    (delivery,) = store.deliveries(article_ids=["sched-1"])
    claim = store.claim(delivery.id, 60, now=now + timedelta(seconds=10))
    assert claim is not None
    store.record_delivered(claim, remote_id="x", remote_url=None, started_at=now, duration_ms=1)
    later = article(publish_at="2026-07-02T00:00:00Z")
    result = store.publish(later, publishing.plan(later, [channels["site"]]), now=now)
    assert result.to_enqueue == []
    row = store.delivery(delivery.id)
    assert row.state == State.DELIVERED and row.publish_at == utc(2026, 7, 1, 0, 0, 10)


def test_a_cancelled_schedule_is_never_released(store: Store, channels: dict[str, Channel]) -> None:
    now = datetime.now(UTC)
    at = article(publish_at=(now + timedelta(seconds=30)).isoformat())
    store.publish(at, publishing.plan(at, [channels["site"]]), now=now)
    (delivery,) = store.deliveries(article_ids=["sched-1"])
    store.cancel(delivery.id, actor="desk")
    assert released(store, now + timedelta(minutes=1)) == set()
    assert store.claim(delivery.id, 60, now=now + timedelta(minutes=1)) is None
    assert store.arm_schedules(within=3600, now=now) == []
    assert store.delivery(delivery.id).state == State.CANCELLED


# -- through the real worker and beat --------------------------------------------------


@pytest.fixture
def make_stack(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def build(**env: str) -> Stack:
        prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
        root = tmp_path / prefix.rsplit(":", 2)[-2]
        root.mkdir()
        stack = Stack(root, {"site": {"type": "rss"}, "app": {"type": "app_feed"}},
                      redis_url=TEST_REDIS_URL, prefix=prefix, env=env)  # fmt: skip
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.close()
        for key in redis_client.scan_iter(match=f"{stack.settings.redis_prefix}*"):
            redis_client.delete(key)


def lateness(stack: Stack, article_id: str) -> list[float]:
    """Seconds from each delivery's publish_at to the start of its one attempt."""
    late = []
    for d in stack.runtime.store.deliveries(article_ids=[article_id]):
        attempts = [a for a in stack.runtime.store.attempts(d.id) if a.outcome == "delivered"]
        assert len(attempts) == 1 and d.publish_at is not None, (d.state, attempts)
        late.append((attempts[0].started_at - d.publish_at).total_seconds())
    return late


def in_seconds(seconds: float, zone: str = "Asia/Shanghai") -> tuple[str, datetime]:
    """A wall-clock time `seconds` from now in `zone`, as an editor would type it."""
    from zoneinfo import ZoneInfo

    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return when.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(), when


def test_scheduled_articles_are_released_within_a_second(
    make_stack: Callable[..., Stack],
) -> None:
    """With a sweep every 5 s, only the countdown armed at publish time (or by the
    sweeper ahead of time) can release on time; the release tick alone could not."""
    stack = make_stack(PUBLISHER_SWEEP_INTERVAL="5")
    stack.start_worker()
    local, armed_at_publish = in_seconds(4)
    stack.runtime.publish(article(id="on-time", timezone="Asia/Shanghai", publish_at=local))
    # Stored without the runtime's arming: the sweeper's next tick arms it.
    local, armed_by_sweeper = in_seconds(9, NEW_YORK)
    swept = article(id="swept", timezone=NEW_YORK, publish_at=local)
    publishing.publish(swept, stack.runtime.store, stack.runtime.channels)
    assert {d.state for d in stack.runtime.store.deliveries()} == {State.SCHEDULED}
    stack.wait_settled(["on-time", "swept"], timeout=60)
    assert {d.publish_at for d in stack.runtime.store.deliveries(article_ids=["on-time"])} == {
        armed_at_publish
    }
    assert {d.publish_at for d in stack.runtime.store.deliveries(article_ids=["swept"])} == {
        armed_by_sweeper
    }
    late = lateness(stack, "on-time") + lateness(stack, "swept")
    print(f"release lateness (s): {sorted(late)}")
    assert all(0 <= seconds < 1.0 for seconds in late), late


def test_a_schedule_can_be_moved_or_cancelled_until_it_is_released(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_worker()
    now = datetime.now(UTC).replace(microsecond=0)
    first, moved, cancelled = (now + timedelta(seconds=s) for s in (3, 6, 3))
    stack.runtime.publish(article(id="moved", publish_at=first.isoformat()))
    stack.runtime.publish(article(id="dropped", publish_at=cancelled.isoformat()))
    again = stack.runtime.publish(article(id="moved", publish_at=moved.isoformat()))
    assert not again.changed and again.version == 1
    for d in stack.runtime.store.deliveries(article_ids=["dropped"]):
        stack.runtime.store.cancel(d.id, actor="desk")

    stack.wait_settled(["moved", "dropped"], timeout=60)
    assert datetime.now(UTC) >= moved
    late = lateness(stack, "moved")
    assert all(0 <= seconds < 1.0 for seconds in late), late  # at the new time, not the old
    time.sleep(max(0.0, (cancelled - datetime.now(UTC)).total_seconds()) + 1.0)
    for d in stack.runtime.store.deliveries(article_ids=["dropped"]):
        assert d.state == State.CANCELLED and d.attempts == 0
        assert [a.outcome for a in stack.runtime.store.attempts(d.id)] == ["cancelled"]


# -- the HTTP API and the CLI ----------------------------------------------------------


def test_the_api_takes_a_zone_and_reschedules_on_repost(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(PUBLISHER_API_TOKENS="desk:s3cret", PUBLISHER_TIMEZONE="Europe/London")
    desk = {"Authorization": "Bearer s3cret"}
    body = {**BASE, "id": "api-sched"}
    with BackgroundServer(create_app(stack.runtime)) as server:
        post = lambda **f: requests.post(  # noqa: E731
            f"{server.url}/api/articles", json={**body, **f}, headers=desk, timeout=30
        )
        zoned = post(publish_at="2030-07-01T09:00", timezone=NEW_YORK)
        assert zoned.status_code == 202, zoned.text
        assert {d["state"] for d in zoned.json()["deliveries"]} == {"scheduled"}
        assert {datetime.fromisoformat(d["publish_at"]) for d in zoned.json()["deliveries"]} == {
            utc(2030, 7, 1, 13, 0)
        }
        # The newsroom's zone (London, BST in July) when the article names none.
        moved = post(publish_at="2030-07-01T09:00")
        assert moved.status_code == 202
        assert (moved.json()["changed"], moved.json()["rescheduled"]) == (False, True)
        assert {datetime.fromisoformat(d["publish_at"]) for d in moved.json()["deliveries"]} == {
            utc(2030, 7, 1, 8, 0)
        }
        # An embargoed article's content is for token holders (tests/web/test_read_access.py).
        detail = requests.get(
            f"{server.url}/api/articles/api-sched", headers=desk, timeout=10
        ).json()
        assert detail["article"]["publish_at"] == "2030-07-01T09:00:00+01:00"
        assert detail["article"]["timezone"] is None

        gap = post(publish_at="2030-03-10T02:30", timezone=NEW_YORK)
        assert gap.status_code == 422
        assert gap.json()["error"]["field"] == "publish_at"
        assert "does not exist in America/New_York" in gap.json()["error"]["problem"]
        unknown = post(publish_at="2030-07-01T09:00", timezone="Europe/Atlantis")
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "timezone"


@pytest.fixture
def cli(tmp_path: Path, redis_prefix: str, redis_client: redis.Redis) -> Iterator[Any]:
    prefix = f"{redis_prefix}cli-tz-{uuid.uuid4().hex[:6]}:"
    matrix = write_matrix(tmp_path / "matrix.toml", {"site": {"type": "rss"}}, {"title": "T"})
    env = {
        **os.environ, "PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix, "REDIS_URL": TEST_REDIS_URL, "COLUMNS": "200",
    }  # fmt: skip

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "publisher", *args], env={**env, **extra}, cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    yield run
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def test_cli_at_with_tz_or_the_newsroom_zone(cli: Any, tmp_path: Path) -> None:
    sample = str(SAMPLES / "digital-talent.json")
    done = cli("publish", sample, "--at", "2030-01-01T08:00", "--tz", "Asia/Shanghai")
    assert done.returncode == 0, done.stderr
    store = Store(f"sqlite:///{tmp_path / 'var' / 'publisher.db'}")
    try:
        deliveries = store.deliveries(article_ids=["2024-04-22-digital-talent"])
        assert {(d.state, d.publish_at) for d in deliveries} == {
            (State.SCHEDULED, utc(2030, 1, 1, 0, 0))
        }
        moved = cli("publish", sample, "--at", "2030-01-01T08:00", PUBLISHER_TIMEZONE=NEW_YORK)
        assert moved.returncode == 0, moved.stderr
        assert "2024-04-22-digital-talent: rescheduled (version 1)" in moved.stdout
        deliveries = store.deliveries(article_ids=["2024-04-22-digital-talent"])
        assert {d.publish_at for d in deliveries} == {utc(2030, 1, 1, 13, 0)}
    finally:
        store.dispose()

    gap = cli("publish", sample, "--at", "2030-03-10T02:30", "--tz", NEW_YORK)
    assert gap.returncode == 2
    assert gap.stderr.startswith("error: --at: 2030-03-10T02:30:00 does not exist in")
    bad = cli("publish", sample, "--at", "2030-01-01T08:00", "--tz", "Moon/Base")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --tz: 'Moon/Base' is not")
    naive = cli("publish", sample, "--at", "2030-01-01T08:00")
    assert naive.returncode == 2 and "--at: has no time zone" in naive.stderr
    assert "--tz" in naive.stderr
