"""Publishing a burst from several processes, as an API served by several
worker processes (or several editors' CLIs) would, so that the one process
of the script is not what caps the rate a burst is delivered at.

Each process builds its own `Runtime` from the bench's environment (the same
store, broker and matrix), waits until every one of them is ready, then
publishes its share of the articles with the real `Runtime.publish`, one at
a time. It hands back when it published each article (for the latency) and
the CPU it used while publishing. It connects to the store before it says it
is ready, so its PostgreSQL server process is among the caller's from the
start of the caller's accounting, and it exits only when the caller is done.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from seed import make_article  # bench/seed.py, beside this file

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
    release: Any,
) -> None:
    runtime = Runtime(Settings.load(env))
    articles = [make_article(article_id, n) for article_id, n in share]
    runtime.redis.ping()
    runtime.store.ping()  # its connection (and PostgreSQL server process) is open now
    ready.put(True)
    go.wait()
    stamps: dict[str, datetime] = {}
    cpu = time.process_time()
    for article in articles:
        stamps[article.id] = datetime.now(UTC)
        runtime.publish(article, only=only)
    results.put((stamps, datetime.now(UTC), time.process_time() - cpu))
    release.wait(timeout=600)  # exit only once the caller has measured what it waits for
    runtime.close()


def publish_burst(
    env: dict[str, str],
    ids: Sequence[tuple[str, int]],
    only: list[str],
    processes: int,
    on_ready: Callable[[], object] | None = None,
    on_published: Callable[[], object] | None = None,
) -> Burst:
    """Publish `ids` ((article id, n) pairs) from `processes` processes, dealt round
    robin, all starting at one signal; returns once every one has finished.
    `on_ready` runs once they are all started, just before the signal (the caller
    starts its CPU accounting there, after the processes' start-up);
    `on_published` once they have all published, before they exit (the caller
    waits for the deliveries and ends its accounting there: the processes'
    interpreter shutdown is no more part of publishing than their start-up).
    A real publisher, an API process, does not exit after a burst."""
    context = multiprocessing.get_context("spawn")  # nothing of this process is shared
    ready, results = context.Queue(), context.Queue()
    go, release = context.Event(), context.Event()
    shares = [list(ids[i::processes]) for i in range(processes)]
    children = [
        context.Process(target=_publish_share, args=(env, share, only, ready, go, results, release))
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
            stamps, finished, cpu = results.get(timeout=600)
            burst.published.update(stamps)
            burst.finished = max(burst.finished, finished)
            burst.cpu_seconds += cpu
        if on_published is not None:
            on_published()
    finally:
        release.set()
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    return burst
