"""The command line as a user runs it: a real process, real Redis, real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
import redis

from tests.cli.environment import cli_env
from tests.conftest import SAMPLES, TEST_REDIS_URL

REPO = Path(__file__).parents[2]


@pytest.fixture
def cli(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    prefix = f"{redis_prefix}cli-{uuid.uuid4().hex[:6]}:"
    env = cli_env(tmp_path, prefix)

    def run(*args: str, check_code: int | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check_code is not None:
            assert done.returncode == check_code, done.stdout + done.stderr
        return done

    yield run
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def test_help_lists_every_command(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    out = cli("--help", check_code=0).stdout
    for command in ("publish", "status", "retry", "preview", "worker", "beat", "demo"):
        assert command in out


def test_publish_then_status(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    out = cli("publish", str(SAMPLES / "skills-contest.md"), check_code=0).stdout
    assert "2026-11-20-skills-contest: published version 1" in out
    again = cli("publish", str(SAMPLES / "skills-contest.md"), check_code=0).stdout
    assert "unchanged (version 1), nothing new" in again
    table = cli("status", check_code=0).stdout
    assert "2026-11-20-skills-contest" in table and "pending" in table
    detail = cli("status", "2026-11-20-skills-contest", check_code=0).stdout
    assert "site" in detail and "app" in detail


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"url": "https://e.org/x", "body_html": "<p>x</p>", "id": "x"},
            "error: title: is required",
        ),
        ({"id": "x", "title": "T", "url": "nope", "body_html": "<p>x</p>"}, "error: url:"),
        (
            {
                "id": "x",
                "title": "T",
                "url": "https://e.org/x",
                "body_html": "<p>x</p>",
                "published_at": "2026-11-20T08:30:00",
            },
            "error: published_at: has no time zone",
        ),
        (
            {
                "id": "x",
                "title": "T",
                "url": "https://e.org/x",
                "body_html": "<p>x</p>",
                "channels": ["nowhere"],
            },
            "error: channels: unknown channel 'nowhere'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_stores_nothing(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    content: dict[str, object],
    message: str,
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    done = cli("publish", str(path), check_code=2)
    assert done.stderr.strip().startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1
    assert "x" not in cli("status", check_code=0).stdout.split()


def test_publish_at_needs_a_time_zone(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    done = cli("publish", str(SAMPLES / "digital-talent.json"), "--at", "2030-01-01T08:00",
               check_code=2)  # fmt: skip
    assert "--at: has no time zone" in done.stderr


def test_scheduled_publish(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    out = cli("publish", str(SAMPLES / "digital-talent.json"), "--at",
              "2030-01-01T08:00:00+08:00", "--channel", "site", check_code=0).stdout  # fmt: skip
    assert "scheduled" in out and "app" not in out.split("┃ last error")[-1]


def test_retry_refuses_a_pending_delivery(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    cli("publish", str(SAMPLES / "digital-talent.json"), check_code=0)
    assert "only failed" in cli("retry", "1", check_code=2).stderr
    assert "queued 0" in cli("retry", "--failed", check_code=0).stdout
    assert "does not exist" in cli("retry", "999", check_code=2).stderr


def test_preview_sends_and_stores_nothing(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    payloads = json.loads(cli("preview", str(SAMPLES / "skills-contest.md"), "--json",
                              check_code=0).stdout)  # fmt: skip
    assert set(payloads) == {"site", "app"}
    assert payloads["site"]["title"].startswith("全国数字技能大赛")
    assert "no deliveries" in cli("status", check_code=0).stdout


def test_demo_exits_0_and_leaves_valid_feeds(tmp_path: Path) -> None:
    """`publisher demo` with nothing configured: the embedded Redis and SQLite."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["PUBLISHER_DATA_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "publisher", "demo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    feeds = tmp_path / "var" / "feeds"
    rss = feedparser.parse((feeds / "rss.xml").read_bytes())
    assert not rss.bozo and len(rss.entries) == 2
    assert json.loads((feeds / "app.json").read_text())["version"].endswith("1.1")
    # Both samples read aloud, in the podcast, and copied out to listen to (and said so).
    podcast = feedparser.parse((feeds / "podcast.xml").read_bytes())
    assert not podcast.bozo and len(podcast.entries) == 2
    names = sorted(e.enclosures[0].href.rsplit("/", 1)[1] for e in podcast.entries)
    assert sorted(p.name for p in (tmp_path / "var" / "media").glob("*.mp3")) == names
    assert done.stdout.count("listen to") == 2
    assert not (tmp_path / "var" / "redis.sock").exists()  # the embedded Redis was stopped


def test_beat_runs_with_remote_redis_and_database(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """Regression: with REDIS_URL and DATABASE_URL set nothing created the data dir,
    so beat died on its schedule file and no sweeper ran."""
    from tests.conftest import postgres_schema_url

    prefix = f"{redis_prefix}beat-{uuid.uuid4().hex[:6]}:"
    schemas = postgres_schema_url()
    database_url = next(schemas)
    data_dir = tmp_path / "never-created"
    env = {
        **os.environ,
        "PUBLISHER_DATA_DIR": str(data_dir),
        "PUBLISHER_REDIS_PREFIX": prefix,
        "REDIS_URL": TEST_REDIS_URL,
        "DATABASE_URL": database_url,
        "PUBLISHER_SWEEP_INTERVAL": "0.2",
    }
    beat = subprocess.Popen(
        [sys.executable, "-m", "publisher", "beat"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        sweeps = 0
        while time.monotonic() < deadline and not sweeps:
            assert beat.poll() is None, beat.stdout.read().decode() if beat.stdout else ""
            sweeps = redis_client.llen(f"{prefix}celery:control")
            time.sleep(0.2)
        assert sweeps > 0  # beat is sending sweeps to the control queue
    finally:
        beat.terminate()
        beat.wait(timeout=30)
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)
        next(schemas, None)
