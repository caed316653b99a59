"""`publisher approve` as an operator runs it: a real process over the real store,
approving and rejecting what a writer submitted through the API's path."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from publisher.config.settings import Settings
from publisher.domain.article import parse_article
from publisher.worker.runtime import Runtime
from tests.cli.environment import cli_env

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def desk(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[tuple[Run, Runtime]]:
    """The CLI, and a runtime over the same store to submit articles as a writer."""
    prefix = f"{redis_prefix}approve-{uuid.uuid4().hex[:6]}:"
    env = cli_env(tmp_path, prefix, {"approval": True})
    runtime = Runtime(Settings.load(env))
    runtime.store.migrate()

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "publisher", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
        return done

    yield run, runtime
    runtime.close()
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)


def submit(runtime: Runtime, article_id: str) -> None:
    article = parse_article(
        {
            "id": article_id,
            "url": f"https://news.example.org/{article_id}",
            "title": f"Story {article_id}",
            "body_html": "<p>Body.</p>",
        }
    )
    runtime.publish(article, actor="wanda", awaiting=True)


def test_status_shows_what_waits_and_approve_lets_it_out(desk: tuple[Run, Runtime]) -> None:
    run, runtime = desk
    submit(runtime, "cli-w")
    shown = run("status", "cli-w").stdout
    assert "awaiting_approval" in shown
    assert "version 1 by wanda awaits an editor: publisher approve cli-w" in shown
    listed = json.loads(run("status", "--json", "--state", "awaiting_approval").stdout)
    assert {d["article_id"] for d in listed["deliveries"]} == {"cli-w"}
    assert listed["counts"] == {"awaiting_approval": 2}

    out = run("approve", "cli-w", "--version", "1", "--by", "chief").stdout
    assert "cli-w: approved" in out and "awaits an editor" not in out
    detail = json.loads(run("status", "cli-w", "--json").stdout)
    assert {d["state"] for d in detail["deliveries"]} == {"pending"}
    for d in detail["deliveries"]:
        assert d["log"][0]["outcome"] == "approved" and d["log"][0]["actor"] == "chief"

    again = run("approve", "cli-w", code=2)
    assert "error: article: cli-w has no version awaiting approval" in again.stderr


def test_reject_with_a_reason_and_a_stale_version_refused(desk: tuple[Run, Runtime]) -> None:
    run, runtime = desk
    submit(runtime, "cli-r")
    out = run("approve", "cli-r", "--reject", "Not our style").stdout
    assert "cli-r: rejected" in out and "rejected by cli: Not our style" in out
    detail = json.loads(run("status", "cli-r", "--json").stdout)
    assert {d["state"] for d in detail["deliveries"]} == {"cancelled"}
    assert "approve" in run("--help").stdout

    submit(runtime, "cli-z")
    wrong = run("approve", "cli-z", "--version", "7", code=2)
    assert "version 7 is not the one awaiting approval (1)" in wrong.stderr
