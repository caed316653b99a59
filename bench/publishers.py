"""Publishing a burst from several processes, as an API served by several
worker processes (or several editors' CLIs) would, so that the one process
of the script is not what caps the rate a burst is delivered at.

Each process builds its own `Runtime` from the bench's environment (the same
store, broker and matrix), waits until every one of them is ready, then
publishes its share of the articles with the real `Runtime.publish`, one at
a time. It hands back when it published each article (for the latency), the
CPU it used while publishing and, on PostgreSQL, the CPU of the server
process that served it (gone by the time the caller looks, with the process).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from measure import pids_cpu  # bench/measure.py, beside this file
from seed import make_article

from publisher.config.settings import Settings
from publisher.worker.runtime import Runtime


@dataclass
class Burst:
    """What the publishing processes did between the start signal and their last publish."""

    processes: int
    started: datetime
    finished: datetime
    published: dict[str, datetime] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    database_cpu_seconds: float = 0.0  # PostgreSQL: the processes' server backends

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


def _publish_share(
    env: dict[str, str],
    share: list[tuple[str, int]],
    only: list[str],
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    runtime = Runtime(Settings.load(env))
    articles = [make_article(article_id, n) for article_id, n in share]
    runtime.redis.ping()
    backend = _database_backend(runtime)
    ready.put(True)
    go.wait()
    stamps: dict[str, datetime] = {}
    cpu, database_cpu = time.process_time(), pids_cpu(backend)
    for article in articles:
        stamps[article.id] = datetime.now(UTC)
        runtime.publish(article, only=only)
    database_cpu = pids_cpu(backend) - database_cpu
    results.put((stamps, datetime.now(UTC), time.process_time() - cpu, database_cpu))
    runtime.close()


def _database_backend(runtime: Runtime) -> list[int]:
    """The PostgreSQL server process of this process's one pooled connection
    (publishing one article at a time reuses it); none on SQLite."""
    engine = runtime.store.engine
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as conn:
        return [int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())]


def publish_burst(
    env: dict[str, str],
    ids: Sequence[tuple[str, int]],
    only: list[str],
    processes: int,
    on_ready: Callable[[], object] | None = None,
) -> Burst:
    """Publish `ids` ((article id, n) pairs) from `processes` processes, dealt round
    robin, all starting at one signal; returns once every one has finished.
    `on_ready` runs once they are all started, just before the signal (the caller
    starts its CPU accounting there, after the processes' start-up)."""
    context = multiprocessing.get_context("spawn")  # nothing of this process is shared
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    shares = [list(ids[i::processes]) for i in range(processes)]
    children = [
        context.Process(target=_publish_share, args=(env, share, only, ready, go, results))
        for share in shares
        if share
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=120)
        if on_ready is not None:
            on_ready()
        burst = Burst(len(children), datetime.now(UTC), datetime.now(UTC))
        go.set()
        for _ in children:
            stamps, finished, cpu, database_cpu = results.get(timeout=600)
            burst.published.update(stamps)
            burst.finished = max(burst.finished, finished)
            burst.cpu_seconds += cpu
            burst.database_cpu_seconds += database_cpu
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    return burst
