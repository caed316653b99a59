"""Phase 5 of bench/throughput.py: remote deliveries, and the headline numbers.

N articles x the webhook channel, POSTing to a loopback receiver that answers
200 at once, delivered by a real `publisher worker` (same concurrency as the
feed phase, same broker): what a remote delivery costs next to a no-op task
on the same broker in the same run. Also the worker's resident memory, read
from /proc for every process of its group (the Celery main process and its
pool), after it has worked through the phase.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measure import cpu_snapshot, cpu_used, noop_rate, summarize  # bench/measure.py
from sqlalchemy import select

from publisher.domain.states import State
from publisher.store.models import DeliveryRow
from sandbox.server import free_port

HOOK = "hook"


class Receiver:
    """The loopback receiver in a process of its own, as a remote server is: in
    this script's process it would take the GIL from the publishing."""

    def __init__(self) -> None:
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Receiver:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port)], start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that reads the request and answers 200 at once."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


@dataclass
class Remote:
    articles: int
    delivered: int
    publish_seconds: float
    total_seconds: float
    per_second: float
    worker_rss_mb: float  # the largest process of the worker's group
    worker_group_rss_mb: float  # all of them
    cpu: Any = None  # measure.Cpu of the burst's window (the receiver's own process aside)
    task_ms: dict[str, tuple[int, float]] | None = None


def group_rss_mb(pgid: int) -> tuple[float, float]:
    """(largest, total) resident set of the processes in a process group, in MB."""
    sizes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return (max(sizes, default=0.0), sum(sizes))


def run_remote(bench: Any, deployment: Any, runtime: Any, n: int) -> Remote:
    """`bench` is the throughput module (its helpers, without an import cycle)."""
    store = runtime.store
    worker = deployment.start_worker(
        ["-m", "publisher", "worker", "--concurrency", str(bench.CONCURRENCY)], "remote.log"
    )

    def settled(prefix: str, expected: int) -> Any:
        return lambda: bench.settled_count(store, prefix) == (expected, expected)

    for i in range(4):
        runtime.publish(bench.make_article(f"rwarm-{i}", i), only=[HOOK])
    bench.wait_for(settled("rwarm-", 4), deployment, "the remote warm-up", 120)
    log = deployment.tmp / "remote.log"
    log_start, snapshots = log.stat().st_size, []

    def settled_then_snapshot() -> None:
        bench.wait_for(settled("remote-", n), deployment, "settling the remote burst", 60 + n)
        snapshots.append(cpu_snapshot(deployment, worker, runtime.redis))

    ids = [(f"remote-{i:06d}", i) for i in range(n)]
    burst = bench.publish_burst(
        deployment.env,
        ids,
        [HOOK],
        deployment.publishers,
        on_ready=lambda: snapshots.append(cpu_snapshot(deployment, worker, runtime.redis)),
        on_published=settled_then_snapshot,
    )
    started = min(burst.published.values())
    publish_seconds = (burst.finished - started).total_seconds()
    cpu = cpu_used(*snapshots)
    cpu.script += burst.cpu_seconds
    time.sleep(0.1)  # the last 'succeeded' lines follow the store's commit
    task_ms = summarize(bench.task_times(log, log_start, log.stat().st_size))
    largest, total = group_rss_mb(worker.pid)
    with store.session() as session:
        done = session.scalars(
            select(DeliveryRow.delivered_at).where(
                DeliveryRow.article_id.startswith("remote-"),
                DeliveryRow.state == State.DELIVERED,
            )
        ).all()
    deployment.stop_worker(worker)
    seconds = (max(d for d in done if d) - started).total_seconds()
    return Remote(n, len(done), publish_seconds, seconds, len(done) / seconds, largest, total,
                  cpu, task_ms)  # fmt: skip


def headline(results: Any) -> dict[str, float]:
    """The numbers issue 10's goals are stated in, from one run."""
    p, remote = results.pipeline, results.remote
    noop = noop_rate(results)
    out: dict[str, float] = {}
    if noop is not None:
        out["noop_tasks_per_s"] = noop
    if p is not None:
        out["feed_deliveries_per_s"] = p.per_second
        out["idle_in_feed_p50_ms"] = p.visible_p50_ms
        out["idle_in_feed_p99_ms"] = p.visible_p99_ms
        out["burst_all_in_feed_s"] = p.total_seconds - p.publish_seconds
        if noop is not None:
            out["feed_ratio"] = p.per_second / noop
    cpu_per = cpu_ms_per_item(results)
    out.update({f"{name}_cpu_ms": value for name, value in cpu_per.items()})
    if remote is not None:
        out["remote_deliveries_per_s"] = remote.per_second
        out["worker_rss_mb"] = remote.worker_rss_mb
        if noop is not None:
            out["remote_ratio"] = remote.per_second / noop
    for size in sorted({r.articles for r in results.rebuilds}):
        key = "rebuild_ms_100" if size == 100 else f"rebuild_ms_{size}"
        out[key] = sum(r.total_ms for r in results.rebuilds if r.articles == size)
    return out


def cpu_ms_per_item(results: Any) -> dict[str, float]:
    """CPU our processes used per item (worker group, publishing processes, Redis,
    PostgreSQL backends; not other sessions', not the receiver's): the cost that
    load on a shared machine does not move much, beside the rates that it does."""
    out: dict[str, float] = {}
    p, remote = results.pipeline, results.remote
    runs = [r for r in (results.noop, results.noop_after) if r is not None]
    if runs:
        out["noop_task"] = sum(ours(r.cpu) for r in runs) / sum(r.tasks for r in runs) * 1000
    if p is not None:
        out["feed_delivery"] = ours(p.cpu) / p.deliveries * 1000
    if remote is not None and remote.cpu is not None:
        out["remote_delivery"] = ours(remote.cpu) / remote.articles * 1000
    return out


def ours(cpu: Any) -> float:
    return float(cpu.workers + cpu.script + cpu.redis + cpu.database)


if __name__ == "__main__":  # `remote.py --serve PORT`: the receiver's own process
    import uvicorn

    port = int(sys.argv[sys.argv.index("--serve") + 1])
    uvicorn.run(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                access_log=False)  # fmt: skip
