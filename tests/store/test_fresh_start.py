"""A fresh start in any order: worker, beat and API started at the same moment
on an empty data dir, as an operator (or a supervisor after a reboot) does.

Each process migrates on start; on SQLite they must take turns (a file lock
beside the database), or two of them create the same table and one dies.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from publisher.store import Store
from sandbox.server import BackgroundServer, free_port
from tests.conftest import TEST_REDIS_URL, write_matrix
from tests.support.receiver import Receiver

ROUNDS = 3
TOKEN = "fresh-start-token"


def migrate_after(url: str, barrier: Any) -> None:
    barrier.wait()  # every process reaches migrate() at the same moment
    Store(url).migrate()


def test_migrations_started_at_the_same_moment_take_turns_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'publisher.db'}"
    forked = multiprocessing.get_context("fork")  # a process each, started in a blink
    barrier = forked.Barrier(4)
    processes = [forked.Process(target=migrate_after, args=(url, barrier)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * 4
    store = Store(url)
    try:
        store.migrate()  # current: nothing to do, and no error
        assert store.recent_articles(5) == []
    finally:
        store.dispose()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with BackgroundServer(rec.app()) as server:
        yield rec, f"{server.url}/hook"


def start_all(env: dict[str, str], data_dir: Path, port: int) -> list[subprocess.Popen[bytes]]:
    """The three processes of a deployment, started together (none waits for another)."""
    commands = {
        "worker": [sys.executable, "-m", "publisher", "worker", "--concurrency", "1"],
        "beat": [sys.executable, "-m", "publisher", "beat"],
        "api": [sys.executable, "-m", "uvicorn", "publisher.asgi:app", "--port", str(port)],
    }
    data_dir.mkdir(parents=True)
    processes = []
    for name, argv in commands.items():
        log = (data_dir.parent / f"{data_dir.name}-{name}.log").open("wb")
        processes.append(
            subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    return processes


def logs(data_dir: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted(data_dir.parent.glob(f"{data_dir.name}-*.log"))
    )


def wait_for(
    condition: Callable[[], bool],
    what: str,
    processes: list[subprocess.Popen[bytes]],
    data_dir: Path,
    timeout: float = 60.0,
) -> None:
    """Poll `condition`; fail at once, with the logs, if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(
                    f"{process.args} exited {process.returncode}\n{logs(data_dir)}"
                )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{logs(data_dir)}")


class Api:
    """The API as a client sees it, with the desk's token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def up(self) -> bool:
        try:
            return self.session.get(f"{self.base}/healthz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    def publish(self, article_id: str) -> None:
        posted = self.session.post(f"{self.base}/api/articles", timeout=10, json={
            "id": article_id, "url": f"https://news.example.org/{article_id}",
            "title": f"Fresh {article_id}", "body_html": "<p>A fresh start.</p>",
        })  # fmt: skip
        assert posted.status_code == 202, posted.text

    def states(self, article_ids: list[str]) -> list[str]:
        return [
            delivery["state"]
            for article_id in article_ids
            for delivery in self.session.get(
                f"{self.base}/api/articles/{article_id}", timeout=10
            ).json()["deliveries"]
        ]


def run_round(env: dict[str, str], data_dir: Path, article_ids: list[str]) -> None:
    """Start all three at once on `data_dir`, publish through the API, see it delivered."""
    port = free_port("127.0.0.1")
    processes = start_all(env, data_dir, port)
    api = Api(port)
    try:
        wait_for(api.up, "the API", processes, data_dir)
        for article_id in article_ids:
            api.publish(article_id)

        def delivered() -> bool:
            states = api.states(article_ids)
            return len(states) == 2 * len(article_ids) and set(states) == {"delivered"}

        wait_for(delivered, f"{article_ids} delivered", processes, data_dir)
    finally:
        api.session.close()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def test_worker_beat_and_api_started_together_on_a_fresh_data_dir(
    tmp_path: Path,
    redis_prefix: str,
    redis_client: redis.Redis,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {"site": {"type": "rss"}, "hook": {"type": "webhook", "base_url": url}},
        {"title": "Fresh Daily", "home_page_url": "https://news.example.org/"},
    )
    published: list[str] = []
    for round_ in range(ROUNDS):
        prefix = f"{redis_prefix}fresh-{uuid.uuid4().hex[:6]}:"
        env = {
            **os.environ,
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / f"var{round_}"),
            "PUBLISHER_REDIS_PREFIX": prefix,
            "REDIS_URL": TEST_REDIS_URL,
            "PUBLISHER_API_TOKENS": f"desk:{TOKEN}",
            "PUBLISHER_SWEEP_INTERVAL": "0.5",
        }
        ids = [f"fresh-{round_}-{n}" for n in range(3)]
        try:
            run_round(env, tmp_path / f"var{round_}", ids)
        finally:
            for key in redis_client.scan_iter(match=f"{prefix}*"):
                redis_client.delete(key)
        published += ids
    assert sorted(post["id"] for post in rec.posts.values()) == sorted(published)
