"""Commands start only what they need, and leave nothing running behind them.

On the embedded default (no `REDIS_URL`) the short commands run as real
processes; afterwards no redis-server may serve the data dir (looked up by
its process title, `redis-server unixsocket:<socket>`, and by the socket).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from publisher.coord.broker import EmbeddedRedis
from tests.conftest import SAMPLES, write_matrix

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def embedded_cli(tmp_path: Path, redis_prefix: str) -> Iterator[tuple[Run, EmbeddedRedis]]:
    """The CLI on the embedded default, on a fresh data dir."""
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {"site": {"type": "rss"}, "app": {"type": "app_feed"}},
        {"title": "CLI Daily", "home_page_url": "https://news.example.org/"},
    )
    env = {
        **os.environ,
        "PUBLISHER_CONFIG": str(matrix),
        "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": redis_prefix,
        "COLUMNS": "200",
    }
    env.pop("REDIS_URL", None)
    embedded = EmbeddedRedis(tmp_path / "var")

    def run(*args: str, code: int = 0, columns: int = 200) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args],
            env={**env, "COLUMNS": str(columns)}, cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
        return done

    try:
        yield run, embedded
    finally:
        embedded.stop()  # only if a test (or a regression) left it running


def servers_for(embedded: EmbeddedRedis) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-af", f"unixsocket:{embedded.socket}"], capture_output=True, text=True
    )
    return [line for line in found.stdout.splitlines() if "redis-server" in line]


def test_short_commands_leave_no_server_running(embedded_cli: tuple[Run, EmbeddedRedis]) -> None:
    run, embedded = embedded_cli
    sample, article_id = str(SAMPLES / "skills-contest.md"), "2026-11-20-skills-contest"
    outputs = {}
    for command in [
        ("publish", sample),
        ("status",),
        ("status", "--state", "pending", "--json"),
        ("retry", "--failed"),
        ("retract", article_id),
        ("preview", sample),
        ("status", article_id, "--json"),
    ]:
        outputs[command[:2]] = out = run(*command).stdout
        if command[0] in ("publish", "retry", "retract"):
            assert "no broker is running for this data dir" in out, out
        assert servers_for(embedded) == [], command
        assert not embedded.is_running(), command

    # The scripts' shape: the API's delivery fields, newest first, and the counts.
    pending = json.loads(outputs[("status", "--state")])
    assert set(pending) == {"deliveries", "counts"}
    assert [(d["channel"], d["kind"], d["state"]) for d in pending["deliveries"]] == [
        ("app", "publish", "pending"), ("site", "publish", "pending"),
    ]  # fmt: skip
    assert pending["counts"] == {"pending": 2}
    # What the commands could not hand to a broker waits in the store: the
    # retraction cancelled the posts that never went out.
    detail = json.loads(outputs[("status", article_id)])
    assert detail["article"] == {"id": article_id, "title": detail["article"]["title"],
                                 "version": 1}  # fmt: skip
    assert {d["state"] for d in detail["deliveries"]} == {"cancelled"}
    assert all(isinstance(d["log"], list) for d in detail["deliveries"])
    assert detail["counts"] == {"cancelled": 2}


def test_stop_stops_the_data_dirs_embedded_redis(embedded_cli: tuple[Run, EmbeddedRedis]) -> None:
    run, embedded = embedded_cli
    assert "no embedded Redis is running" in run("stop").stdout
    assert embedded.ensure_running()  # as demo --keep, serve or a worker leave it
    assert len(servers_for(embedded)) == 1
    out = run("stop").stdout
    assert f"stopped the embedded Redis at {embedded.socket}" in out
    assert servers_for(embedded) == []
    assert not embedded.socket.exists()


def test_status_never_cuts_an_id_that_fits_and_wide_shows_it_all(
    embedded_cli: tuple[Run, EmbeddedRedis], tmp_path: Path
) -> None:
    run, _ = embedded_cli
    article_id = "2026-11-20-national-skills-contest-final-results"  # 48 characters
    article = tmp_path / "long.json"
    article.write_text(json.dumps({
        "id": article_id, "url": "https://news.example.org/long", "title": "Long id",
        "body_html": "<p>Body.</p>",
    }))  # fmt: skip
    run("publish", str(article))
    for columns in (80, 60):
        assert article_id in run("status", columns=columns).stdout, columns
    assert article_id not in run("status", columns=40).stdout  # it does not fit: cut
    assert article_id in run("status", "--wide", columns=40).stdout
