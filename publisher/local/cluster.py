"""A real deployment in miniature, for tests and benchmarks: settings, a store,
and Celery worker processes started the way an operator starts them
(`publisher worker`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from publisher.config.settings import Settings
from publisher.coord.broker import EmbeddedRedis
from publisher.domain.states import SETTLED
from publisher.worker.runtime import Runtime


def write_matrix(
    path: Path,
    channels: dict[str, dict[str, Any]],
    feeds: dict[str, Any],
    newsroom: dict[str, Any] | None = None,
) -> Path:
    """A matrix TOML file with the given channel tables (values: str, int, float, bool,
    and dicts of those as inline tables), and a `[newsroom]` table when given."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["[feeds]", *(f"{k} = {value(v)}" for k, v in feeds.items()), ""]
    if newsroom:
        lines += ["[newsroom]", *(f"{k} = {value(v)}" for k, v in newsroom.items()), ""]
    for name, table in channels.items():
        lines.append(f"[channels.{name}]")
        lines.extend(f"{k} = {value(v)}" for k, v in table.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


FAST = {
    "PUBLISHER_LEASE_SECONDS": "4",
    "PUBLISHER_SWEEP_INTERVAL": "0.5",
    "PUBLISHER_REQUEUE_AFTER": "2",
    "PUBLISHER_FEED_REBUILD_LEASE": "3",
    # A SIGKILLed worker's beat holds the one-beat lock until it expires; the
    # next worker's beat stands by until then.
    "PUBLISHER_BEAT_LOCK_SECONDS": "3",
}


class Stack:
    def __init__(
        self,
        tmp: Path,
        channels: dict[str, dict[str, Any]],
        *,
        redis_url: str | None,
        prefix: str,
        env: dict[str, str] | None = None,
        newsroom: dict[str, Any] | None = None,
    ) -> None:
        matrix = write_matrix(
            tmp / "matrix.toml", channels,
            {"title": "Test Daily", "home_page_url": "https://news.example.org/"}, newsroom,
        )  # fmt: skip
        self.env = {
            **os.environ,
            **FAST,
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp / "var"),
            "PUBLISHER_REDIS_PREFIX": prefix,
            **(env or {}),
        }
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        self.settings = Settings.load(self.env)
        self.embedded = EmbeddedRedis(self.settings.data_dir)
        self.runtime = Runtime(self.settings)
        self.runtime.store.migrate()
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, *, beat: bool = True, concurrency: int = 2) -> subprocess.Popen[bytes]:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.data_dir / f"worker-{len(self.workers)}.log").open("ab")
        args = [sys.executable, "-m", "publisher", "worker", "--concurrency", str(concurrency)]
        worker = subprocess.Popen(
            args + (["--beat"] if beat else []),
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, sig)
        worker.wait(timeout=30)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for worker in self.workers:
                if worker.poll() not in (None, -signal.SIGKILL, -signal.SIGTERM, 0):
                    raise AssertionError(f"worker exited with {worker.returncode}: {self.logs()}")
            time.sleep(0.1)
        waiting = [
            (d.id, d.channel, d.state, d.attempts, d.last_error, d.next_attempt_at)
            for d in self.runtime.store.deliveries(limit=100_000)
            if d.state not in SETTLED
        ]
        raise AssertionError(f"timed out; unsettled: {waiting}\n{self.logs()[-2000:]}")

    def settled(self, article_ids: list[str]) -> bool:
        deliveries = self.runtime.store.deliveries(article_ids=article_ids, limit=100_000)
        return bool(deliveries) and all(d.state in SETTLED for d in deliveries)

    def wait_settled(self, article_ids: list[str], timeout: float = 60.0) -> None:
        self.wait_until(lambda: self.settled(article_ids), timeout)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:]
            for p in sorted(self.settings.data_dir.glob("worker-*.log"))
        )

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                self.kill(worker, signal.SIGTERM)
        self.runtime.close()
        if self.settings.embedded_redis:
            self.embedded.stop()
