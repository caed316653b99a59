"""Recurring syndication and the one-beat guard: cron in a time zone (across DST changes),
settings, runs on a controlled clock (at most once per scheduled time, on SQLite and
PostgreSQL), digest and each modes, and two real `publisher beat` processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from channels import check_matrix
from publisher.config.settings import Settings
from publisher.domain.article import parse_article
from publisher.domain.cron import CronError, CronSchedule
from publisher.domain.errors import ConfigError
from publisher.domain.states import State
from publisher.jobs.syndication import RunState, Syndicator, digest_id, due_time
from publisher.local.cluster import Stack
from publisher.store.models import ArticleRow
from publisher.worker.beatlock import BeatLock, BeatLockHeld
from publisher.worker.periodic import run_periodic
from publisher.worker.runtime import Runtime
from publisher.worker.schedule import tick_interval
from tests.conftest import TEST_REDIS_URL
from tests.jobs.test_ingest import write_ingest_matrix
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
NY = "America/New_York"
CHANNELS = {
    "site": {"type": "rss"},
    "hook": {"type": "webhook", "base_url": "http://127.0.0.1:9/hook"},  # the "microblog"
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---- cron -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("0 20 * * *", "Asia/Shanghai", utc(2026, 3, 1, 12, 0), utc(2026, 3, 2, 12, 0)),
        ("*/15 * * * *", "UTC", utc(2026, 3, 1, 12, 7), utc(2026, 3, 1, 12, 15)),
        ("30 9 * * mon-fri", "UTC", utc(2026, 3, 6, 10, 0), utc(2026, 3, 9, 9, 30)),  # Fri → Mon
        ("0 8 1 jan,jul *", "UTC", utc(2026, 3, 1), utc(2026, 7, 1, 8, 0)),
        ("0 0 * * 7", "UTC", utc(2026, 3, 2), utc(2026, 3, 8)),  # 7 is Sunday too
        ("0 12 13 * 5", "UTC", utc(2026, 3, 1), utc(2026, 3, 6, 12)),  # the 13th *or* a Friday
        ("@daily", "UTC", utc(2026, 3, 1, 0, 0), utc(2026, 3, 2)),
        ("0 0 29 2 *", "UTC", utc(2026, 3, 1), utc(2028, 2, 29)),
    ],
)
def test_next_scheduled_time(
    expression: str, zone: str, after: datetime, expected: datetime
) -> None:
    cron = CronSchedule(expression, zone)
    assert cron.next_after(after) == expected
    assert cron.previous(expected) == expected
    assert cron.previous(expected - timedelta(seconds=1)) != expected


@pytest.mark.parametrize(
    ("expression", "zone", "problem"),
    [
        ("0 20 * *", "UTC", "five fields"),
        ("60 * * * *", "UTC", "minute: 60"),
        ("0 20 * * *", "Mars/Olympus", "IANA"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("*/0 * * * *", "UTC", "step"),
        ("5-1 * * * *", "UTC", "backwards"),
        ("0 0 * foo *", "UTC", "foo"),
    ],
)
def test_bad_cron_expressions(expression: str, zone: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem):
        CronSchedule(expression, zone)


def test_a_daily_time_keeps_its_wall_clock_across_the_spring_change() -> None:
    cron = CronSchedule("0 20 * * *", NY)  # 20:00 EST is 01:00 UTC, 20:00 EDT is 00:00 UTC
    assert cron.between(utc(2026, 3, 6), utc(2026, 3, 10)) == [
        utc(2026, 3, 6, 1), utc(2026, 3, 7, 1), utc(2026, 3, 8, 1),
        utc(2026, 3, 9, 0), utc(2026, 3, 10, 0),
    ]  # fmt: skip


def test_a_time_skipped_by_the_spring_change_fires_once_shifted() -> None:
    cron = CronSchedule("30 2 * * *", NY)  # 02:30 does not exist on 2026-03-08
    assert cron.between(utc(2026, 3, 7), utc(2026, 3, 10)) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 30),  # 03:30 EDT: the skipped 02:30, once
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_a_time_repeated_by_the_autumn_change_fires_once() -> None:
    cron = CronSchedule("30 1 * * *", NY)  # 01:30 happens twice on 2026-11-01
    assert cron.between(utc(2026, 10, 31), utc(2026, 11, 3)) == [
        utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30),
    ]  # fmt: skip
    hourly = CronSchedule("0 * * * *", NY)  # but an hourly job stays hourly
    assert hourly.between(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)) == [
        utc(2026, 11, 1, h) for h in (5, 6, 7, 8)
    ]
    assert hourly.between(utc(2026, 3, 8, 5), utc(2026, 3, 8, 8)) == [
        utc(2026, 3, 8, h) for h in (6, 7, 8)
    ]


# ---- settings ---------------------------------------------------------------------------------


def load(tmp_path: Path, prefix: str, jobs: dict[str, Any], **env: str) -> Settings:
    channels = {**CHANNELS, "wechat": {"type": "wechat", "base_url": "http://127.0.0.1:9"}}
    matrix = write_ingest_matrix(tmp_path / "synd.toml", {"syndication": jobs}, channels)
    return Settings.load(
        {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "PUBLISHER_REDIS_PREFIX": prefix,
            "REDIS_URL": TEST_REDIS_URL,
            **env,
        }
    )


EVENING = {"schedule": "0 20 * * *", "timezone": NY, "channel": "hook", "max_items": 3}


def test_syndication_tables_are_parsed(tmp_path: Path, redis_prefix: str) -> None:
    settings = load(
        tmp_path,
        redis_prefix,
        {
            "evening": EVENING,
            "drip": {**EVENING, "mode": "each", "window": "1d12h", "spacing": 600},
        },
    )
    evening, drip = settings.syndication["evening"], settings.syndication["drip"]
    assert (evening.mode, evening.max_items, evening.window) == ("digest", 3, timedelta(hours=24))
    assert (drip.mode, drip.window, drip.spacing) == ("each", timedelta(hours=36), 600)
    assert evening.cron.timezone == NY and evening.actor == "syndication:evening"
    assert tick_interval(settings) == 5.0


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"schedule": "0 20 * * *", "channel": "hook"}, "timezone"),
        ({**EVENING, "timezone": "EST5EDT-ish"}, "IANA"),
        ({**EVENING, "schedule": "0 25 * * *"}, "hour: 25"),
        ({**EVENING, "channel": "nope"}, "nope"),
        ({**EVENING, "mode": "thread"}, "mode"),
        ({**EVENING, "window": "yesterday"}, "window"),
        ({**EVENING, "window": "30s"}, "one minute"),
        ({**EVENING, "title": "Digest {day}"}, "title"),
    ],
    ids=[
        "no-zone", "bad-zone", "bad-schedule", "unknown-channel",
        "bad-mode", "bad-window", "tiny-window", "bad-title",
    ],
)  # fmt: skip
def test_bad_syndication_tables_are_refused(
    tmp_path: Path, redis_prefix: str, table: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=f"syndication.evening.*{problem}"):
        load(tmp_path, redis_prefix, {"evening": table})


def test_a_wechat_digest_of_eight_is_accepted(tmp_path: Path, redis_prefix: str) -> None:
    job = {**EVENING, "channel": "wechat", "max_items": 8}
    settings = load(tmp_path, redis_prefix, {"evening": job})
    check_matrix(settings.channels, settings.syndication)
    assert settings.syndication["evening"].max_items == 8


def test_a_wechat_digest_over_its_max_articles_is_refused(
    tmp_path: Path, redis_prefix: str
) -> None:
    """The limit is the channel type's `max_articles`, checked before any process runs jobs."""
    job = {**EVENING, "channel": "wechat", "max_items": 9}
    settings = load(tmp_path, redis_prefix, {"evening": job})
    with pytest.raises(ConfigError, match=r"syndication\.evening\.max_items.*at most 8"):
        check_matrix(settings.channels, settings.syndication)
    with pytest.raises(ConfigError, match="at most 8"):
        Runtime(settings)


def test_each_mode_is_not_a_digest_message(tmp_path: Path, redis_prefix: str) -> None:
    job = {**EVENING, "channel": "wechat", "mode": "each", "max_items": 20}
    settings = load(tmp_path, redis_prefix, {"evening": job})
    check_matrix(settings.channels, settings.syndication)


# ---- runs on a controlled clock -----------------------------------------------------------------


@pytest.fixture
def make_runtime(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Runtime]]:
    runtimes: list[Runtime] = []

    def build(jobs: dict[str, Any], database_url: str | None = None) -> Runtime:
        prefix = f"{redis_prefix}synd-{uuid.uuid4().hex[:8]}:"
        env = {"DATABASE_URL": database_url} if database_url else {}
        runtime = Runtime(load(tmp_path, prefix, jobs, **env))
        runtime.store.migrate()
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        prefix = runtime.settings.redis_prefix
        runtime.close()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


def publish_story(runtime: Runtime, n: int, at: datetime, **extra: Any) -> str:
    article = parse_article(
        {
            "id": f"story-{n}",
            "url": f"https://news.example.org/s/{n}",
            "title": f"Story {n}",
            "body_html": f"<p>Body of story {n}.</p>",
            "summary": f"Summary {n}.",
            "published_at": at.isoformat(),
            **extra,
        }
    )
    return runtime.publish(article, only=["site"]).article_id


def test_the_evening_digest_lists_the_newest_articles_of_the_day(
    make_runtime: Callable[..., Runtime], database_url: str
) -> None:
    runtime = make_runtime(
        {"evening": {**EVENING, "title": "Evening {date}", "intro": "Today's top stories."}},
        database_url,
    )
    slot = utc(2026, 3, 9, 0)  # 20:00 EDT on March 8
    publish_story(runtime, 1, slot - timedelta(hours=30))  # outside the 24 h window
    for n, hours in ((2, 20), (3, 10), (4, 5), (5, 1)):
        publish_story(runtime, n, slot - timedelta(hours=hours))
    publish_story(runtime, 6, slot + timedelta(minutes=5))  # after the scheduled time
    publish_story(runtime, 7, slot - timedelta(hours=2))
    runtime.retract("story-7", actor="desk")

    (outcome,) = Syndicator(runtime).run_due(slot + timedelta(seconds=20))
    assert outcome.state == RunState.DONE
    assert outcome.items == ["story-5", "story-4", "story-3"]  # newest first, max_items 3
    assert outcome.article_id == "digest-evening-2026-03-08-2000"
    row, digest, deliveries = runtime.store.article(outcome.article_id)
    assert digest.title == "Evening 2026-03-08" and row.actor == "syndication:evening"
    assert digest.published_at == slot and digest.url == "https://news.example.org/"
    assert digest.body_html.index("Story 5") < digest.body_html.index("Story 3")
    assert 'href="https://news.example.org/s/4"' in digest.body_html
    assert "Today's top stories." in digest.body_html
    assert [(d.channel, d.state) for d in deliveries] == [("hook", State.PENDING)]

    # The next tick, a restarted beat, another worker: the run happened already.
    assert Syndicator(runtime).run_due(slot + timedelta(seconds=30)) == []
    assert [r.state for r in Syndicator(runtime).runs("evening")] == [RunState.DONE]


def test_a_run_is_claimed_once_by_concurrent_workers(
    make_runtime: Callable[..., Runtime], database_url: str
) -> None:
    runtime = make_runtime({"evening": EVENING}, database_url)
    other = make_runtime({"evening": EVENING}, database_url)  # another worker process
    slot = utc(2026, 3, 9, 0)
    publish_story(runtime, 1, slot - timedelta(hours=1))
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def tick(rt: Runtime) -> None:
        barrier.wait()
        results.extend(Syndicator(rt).run_due(slot + timedelta(seconds=1)))

    threads = [threading.Thread(target=tick, args=(rt,)) for rt in (runtime, other) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.state for r in results] == [RunState.DONE]
    assert len(runtime.store.deliveries(channel="hook")) == 1


def test_each_mode_gives_each_article_its_own_spaced_delivery(
    make_runtime: Callable[..., Runtime],
) -> None:
    job = {**EVENING, "mode": "each", "spacing": 900, "max_items": 5}
    runtime = make_runtime({"drip": job})
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(1, 4):
        publish_story(runtime, n, now - timedelta(hours=n))
    runtime.publish(runtime.store.article("story-2")[1], only=["hook"])  # already there
    slot = now - timedelta(seconds=30)
    outcome = Syndicator(runtime).run(runtime.settings.syndication["drip"], slot, now=now)
    assert outcome is not None and outcome.items == ["story-1", "story-3"]
    hook = {d.article_id: d for d in runtime.store.deliveries(channel="hook")}
    assert hook["story-1"].state == State.PENDING
    assert hook["story-3"].state == State.SCHEDULED
    assert hook["story-3"].publish_at == now + timedelta(seconds=900)
    assert runtime.store.article("story-3")[0].current_version == 1  # no new version
    assert Syndicator(runtime).run(runtime.settings.syndication["drip"], slot, now=now) is None


def test_nothing_in_the_window_records_an_empty_run(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime({"evening": EVENING})
    (outcome,) = Syndicator(runtime).run_due(utc(2026, 3, 9, 0, 1))
    assert (outcome.state, outcome.items, outcome.article_id) == (RunState.EMPTY, [], None)
    assert runtime.store.deliveries(channel="hook") == []


def test_a_run_missed_by_more_than_the_grace_is_skipped(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime({"evening": {**EVENING, "misfire_grace": 1800}})
    job = runtime.settings.syndication["evening"]
    assert due_time(job, utc(2026, 3, 9, 0, 29)) == utc(2026, 3, 9, 0)
    assert due_time(job, utc(2026, 3, 9, 0, 31)) is None
    assert Syndicator(runtime).run_due(utc(2026, 3, 9, 2)) == []


def test_a_run_whose_worker_died_is_taken_over_with_the_same_items(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime({"evening": EVENING})
    job = runtime.settings.syndication["evening"]
    slot = utc(2026, 3, 9, 0)
    publish_story(runtime, 1, slot - timedelta(hours=1))
    syndicator = Syndicator(runtime)
    claimed = syndicator._claim(job, slot, slot)  # the worker dies right after claiming
    assert claimed is not None and claimed[1] == ["story-1"]
    publish_story(runtime, 2, slot - timedelta(minutes=1))  # arrives after the claim
    assert syndicator.run(job, slot, now=slot + timedelta(seconds=10)) is None  # lease holds
    lease = runtime.settings.lease_seconds
    outcome = syndicator.run(job, slot, now=slot + timedelta(seconds=lease + 1))
    assert outcome is not None and outcome.items == ["story-1"]
    assert outcome.article_id == digest_id(job, slot)


def test_ticks_across_the_spring_change_run_each_evening_once(
    make_runtime: Callable[..., Runtime],
) -> None:
    """A beat ticking every 10 minutes, March 6-10 in New York, restarted now and then."""
    runtime = make_runtime({"evening": EVENING})
    for day in range(5, 11):
        publish_story(runtime, day, utc(2026, 3, day, 15))
    now, end = utc(2026, 3, 6), utc(2026, 3, 10, 12)
    runs = []
    while now < end:
        runs.extend(run_periodic(runtime, now)["runs"])
        now += timedelta(minutes=10)
    assert runs == [
        ("evening", "2026-03-06T01:00:00+00:00", RunState.DONE),  # 20:00 EST, March 5
        ("evening", "2026-03-07T01:00:00+00:00", RunState.DONE),
        ("evening", "2026-03-08T01:00:00+00:00", RunState.DONE),  # 20:00 EST, March 7
        ("evening", "2026-03-09T00:00:00+00:00", RunState.DONE),  # 20:00 EDT, March 8
        ("evening", "2026-03-10T00:00:00+00:00", RunState.DONE),
    ]
    with runtime.store.session() as session:
        ids = sorted(session.scalars(select(ArticleRow.id).where(ArticleRow.id.like("digest-%"))))
    assert ids == [f"digest-evening-2026-03-0{d}-2000" for d in range(5, 10)]


# ---- the one-beat guard ------------------------------------------------------------------------


@pytest.fixture
def lock_key(redis_prefix: str, redis_client: redis.Redis) -> Iterator[str]:
    key = f"{redis_prefix}beat-{uuid.uuid4().hex[:8]}:beat:lock"
    yield key
    redis_client.delete(key)


def test_the_beat_lock_is_held_by_one_and_taken_over_when_it_expires(
    redis_client: redis.Redis, lock_key: str
) -> None:
    first, second = BeatLock(redis_client, lock_key, 0.5), BeatLock(redis_client, lock_key, 0.5)
    assert first.acquire() and first.held
    assert not second.acquire()
    with pytest.raises(BeatLockHeld, match=r"another beat is running \(pid \d+ on .*--standby"):
        second.refuse_if_held()
    assert first.renew()
    time.sleep(0.6)  # the first beat hangs past its lease
    assert not first.held
    assert second.acquire()
    assert not first.renew()  # it cannot extend its successor's lock ...
    first.release()  # ... nor delete it
    assert redis_client.get(lock_key) == second.token.encode()
    second.release()
    assert redis_client.get(lock_key) is None


def beat_env(tmp_path: Path, prefix: str, **extra: str) -> dict[str, str]:
    matrix = write_ingest_matrix(tmp_path / "beat.toml", {}, {"site": {"type": "rss"}})
    return {
        **os.environ,
        "PUBLISHER_CONFIG": str(matrix),
        "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix,
        "REDIS_URL": TEST_REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'beat.db'}",
        "PUBLISHER_SWEEP_INTERVAL": "0.2",
        "PUBLISHER_BEAT_LOCK_SECONDS": "2",
        **extra,
    }


def start_beat(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`publisher beat` with its output in a file (a pipe nobody reads would block it)."""
    log = Path(env["PUBLISHER_DATA_DIR"]).parent / f"beat-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "publisher", "beat", *args], cwd=REPO, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    beat.log = log  # type: ignore[attr-defined]
    return beat


def output(beat: subprocess.Popen[bytes]) -> str:
    return beat.log.read_text(errors="replace")  # type: ignore[attr-defined, no-any-return]


def holder_pid(client: redis.Redis, key: str) -> int | None:
    value = client.get(key)
    return int(value.decode().split(":")[1]) if value else None


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_two_beats_at_once_one_runs_the_other_refuses_or_stands_by(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    prefix = f"{redis_prefix}beat-{uuid.uuid4().hex[:8]}:"
    env = beat_env(tmp_path, prefix)
    key, queue = f"{prefix}beat:lock", f"{prefix}celery:control"
    beats = [start_beat(env), start_beat(env)]  # started together: one wins the lock
    try:
        wait_for(lambda: any(b.poll() is not None for b in beats))
        (loser,) = [b for b in beats if b.poll() is not None]
        (winner,) = [b for b in beats if b is not loser]
        assert loser.returncode == 1
        assert "error: another beat is running" in output(loser)
        assert "--standby" in output(loser)
        assert holder_pid(redis_client, key) == winner.pid
        wait_for(lambda: redis_client.llen(queue) > 0)  # the winner sweeps
        time.sleep(3)  # longer than the lock's 2 s: the winner renews it
        assert winner.poll() is None, output(winner)
        assert holder_pid(redis_client, key) == winner.pid

        standby = start_beat(env, "--standby")
        beats.append(standby)
        # Its start-up (imports, Redis) takes seconds on a loaded machine: wait for its word.
        wait_for(lambda: "standing by" in output(standby) or standby.poll() is not None)
        assert standby.poll() is None, output(standby)  # waiting, not sending
        time.sleep(3)  # longer than the lock's 2 s: it keeps waiting, the winner keeps it
        assert standby.poll() is None, output(standby)
        assert holder_pid(redis_client, key) == winner.pid
        winner.terminate()  # a clean stop releases the lock ...
        winner.wait(timeout=30)
        wait_for(lambda: holder_pid(redis_client, key) == standby.pid)
        redis_client.delete(queue)
        wait_for(lambda: redis_client.llen(queue) > 0)  # ... and the standby takes over
    finally:
        for beat in beats:
            if beat.poll() is None:
                beat.terminate()
                beat.wait(timeout=30)
        for found in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(found)


def test_a_killed_beat_is_replaced_once_its_lock_expires(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    prefix = f"{redis_prefix}beat-{uuid.uuid4().hex[:8]}:"
    # The lock must outlive the refused beat's start-up (imports take seconds on a
    # loaded machine), or that beat would find it expired and take it.
    env = beat_env(tmp_path, prefix, PUBLISHER_BEAT_LOCK_SECONDS="10")
    key = f"{prefix}beat:lock"
    first = start_beat(env)
    beats = [first]
    try:
        wait_for(lambda: redis_client.get(key) is not None)
        os.killpg(first.pid, 9)  # no chance to release
        first.wait(timeout=30)
        assert redis_client.get(key) is not None
        refused = subprocess.run(
            [sys.executable, "-m", "publisher", "beat"], cwd=REPO, env=env,
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1
        assert b"another beat is running" in refused.stdout + refused.stderr
        standby = start_beat(env, "--standby")
        beats.append(standby)
        wait_for(lambda: holder_pid(redis_client, key) == standby.pid)
    finally:
        for beat in beats:
            if beat.poll() is None:
                beat.terminate()
                beat.wait(timeout=30)
        for found in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(found)


def test_a_second_worker_with_beat_stands_by(
    make_stack: Callable[..., Stack],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    stack = make_stack({"site": {"type": "rss"}})
    first = stack.start_worker()
    key = stack.settings.key("beat", "lock")
    wait_for(lambda: redis_client.get(key) is not None)
    stack.start_worker()
    logs = sorted(stack.settings.data_dir.glob("worker-*.log"))
    wait_for(lambda: "standing by" in logs[-1].read_text(errors="replace"))
    stack.kill(first)  # SIGKILL: its lock expires (3 s in tests) and the other beat takes over
    wait_for(lambda: "took over the beat lock" in logs[-1].read_text(errors="replace"))
    stack.runtime.publish(parse_article({
        "id": "after-takeover", "url": "https://news.example.org/t", "title": "T",
        "body_html": "<p>t</p>",
    }))  # fmt: skip
    stack.wait_settled(["after-takeover"])
