"""What bench/throughput.py measures and how it reports it: CPU accounting from
/proc (per process group, per pid, the whole machine), the result records of
each phase, and the Markdown table written to bench/RESULTS.md."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:  # remote.py imports this module: the name is for the checker only
    from remote import Remote  # bench/remote.py

CONCURRENCY = 2

# -- CPU accounting (Linux /proc) ----------------------------------------------


@dataclass
class Cpu:
    """CPU seconds used during a window, by whom; `available` = wall x cores."""

    wall: float = 0.0
    available: float = 0.0
    machine_busy: float = 0.0
    workers: float = 0.0
    script: float = 0.0
    redis: float = 0.0
    database: float = 0.0  # PostgreSQL backends serving us; SQLite works inside the others
    receiver: float = 0.0  # the remote phase's loopback platform: not ours, not "anything else"


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def _stat(path: Path) -> list[str] | None:
    """Fields after the command name: state ppid pgrp ... utime(11) stime(12)."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone meanwhile


def group_cpu(pgid: int) -> float:
    """User + system seconds of every live process in a process group."""
    total = 0
    for path in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(path)
        if fields and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _ticks()


def pids_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(Path(f"/proc/{pid}/stat"))
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / _ticks()


def machine_busy() -> float:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / _ticks()


def cpu_snapshot(deployment: Any, worker: subprocess.Popen[bytes], client: redis.Redis) -> Cpu:
    info: dict[str, Any] = client.info("cpu")  # the whole server's: ours, unless it is shared
    return Cpu(
        wall=time.monotonic(),
        machine_busy=machine_busy(),
        workers=group_cpu(worker.pid),
        script=time.process_time(),
        redis=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        database=pids_cpu(deployment.database_backends()),
        receiver=pids_cpu([deployment.receiver_pid] if deployment.receiver_pid else []),
    )


def cpu_used(before: Cpu, after: Cpu) -> Cpu:
    wall = after.wall - before.wall
    return Cpu(
        wall=wall,
        available=wall * (os.cpu_count() or 1),
        machine_busy=after.machine_busy - before.machine_busy,
        workers=after.workers - before.workers,
        script=after.script - before.script,
        redis=after.redis - before.redis,
        database=after.database - before.database,
        receiver=after.receiver - before.receiver,
    )


# -- results ----------------------------------------------------------------


@dataclass
class Pipeline:
    articles: int
    deliveries: int
    delivered: int
    attempts: int
    publishers: int
    publish_seconds: float
    total_seconds: float
    per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    idle_samples: int
    idle_p50_ms: float
    idle_p99_ms: float
    visible_p50_ms: float  # idle articles: until every feed document shows them
    visible_p99_ms: float
    feed_spacing: float
    cpu: Cpu
    task_ms: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (count, mean)
    idle_phases_ms: dict[str, float] = field(default_factory=dict)  # bench/timeline.py


@dataclass
class Noop:
    tasks: int
    send_seconds: float
    total_seconds: float
    per_second: float
    cpu: Cpu
    task_ms: dict[str, tuple[int, float]] = field(default_factory=dict)


@dataclass
class Serial:
    """One process, no Celery, no competition: what a publish and a delivery cost."""

    articles: int
    publish_p50_ms: float
    deliver_p50_ms: float
    deliver_p99_ms: float


@dataclass
class Rebuild:
    channel: str
    articles: int
    total_ms: float
    query_ms: float
    render_ms: float
    runs: int


@dataclass
class Results:
    redis: str
    database: str
    pipeline: Pipeline | None = None
    noop: Noop | None = None
    noop_after: Noop | None = None  # the same phase once more, after the delivery phases
    serial: Serial | None = None
    populate_seconds: dict[int, float] = field(default_factory=dict)
    store_mb: dict[int, float] = field(default_factory=dict)
    rebuilds: list[Rebuild] = field(default_factory=list)
    remote: Remote | None = None


def noop_rate(results: Results) -> float | None:
    """The no-op baseline: the mean rate of its runs before and after the delivery phases."""
    rates = [r.per_second for r in (results.noop, results.noop_after) if r is not None]
    return statistics.fmean(rates) if rates else None


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def summarize(times: dict[str, list[float]]) -> dict[str, tuple[int, float]]:
    return {name: (len(v), statistics.fmean(v) * 1000) for name, v in sorted(times.items())}


# -- phase 1 and 3: the pipeline ---------------------------------------------


# -- report -----------------------------------------------------------------


def cpu_row(label: str, cpu: Cpu) -> str:
    ours = cpu.workers + cpu.script + cpu.redis + cpu.database
    database = f"PostgreSQL {cpu.database:.1f}, " if cpu.database else ""
    receiver = f"the receiver {cpu.receiver:.1f}, " if cpu.receiver else ""
    return (
        f"| CPU in that window, {label} (core-s) | worker {cpu.workers:.1f}, this script "
        f"{cpu.script:.1f}, Redis {cpu.redis:.1f}, {database}{receiver}"
        f"anything else {max(0.0, cpu.machine_busy - ours - cpu.receiver):.1f}; "
        f"idle {max(0.0, cpu.available - cpu.machine_busy):.1f} of {cpu.available:.1f} |"
    )


def report(results: Results) -> str:
    lines = [
        f"redis: {results.redis}; database: {results.database}; "
        f"{os.cpu_count()} cores; worker concurrency {CONCURRENCY}",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    p, noop, serial = results.pipeline, results.noop, results.serial
    if p:
        lines += [
            f"| articles × feed channels | {p.articles} × 2 = {p.deliveries} deliveries "
            f"({p.delivered} delivered, {p.attempts} attempts) |",
            f"| publishing them ({p.publishers} processes) | {p.publish_seconds:.2f} s "
            f"({p.articles / p.publish_seconds:.0f} articles/s) |",
            f"| first publish → last delivered | {p.total_seconds:.2f} s |",
            f"| **pipeline throughput** | **{p.per_second:.0f} deliveries/s** |",
            f"| burst latency p50 / p99 / max | {p.latency_p50_ms:.0f} / "
            f"{p.latency_p99_ms:.0f} / {p.latency_max_ms:.0f} ms |",
            f"| idle latency p50 / p99 ({p.idle_samples} deliveries, one article at a time) "
            f"| {p.idle_p50_ms:.0f} / {p.idle_p99_ms:.0f} ms |",
            f"| idle, publish → in every feed document p50 / p99 ({p.idle_samples // 2} articles; "
            f"rebuilds are at most one per {p.feed_spacing:g} s) "
            f"| {p.visible_p50_ms:.0f} / {p.visible_p99_ms:.0f} ms |",
            "| idle, where the time goes (medians: "
            + ", ".join(p.idle_phases_ms)
            + ") | "
            + " / ".join(f"{v:.1f}" for v in p.idle_phases_ms.values())
            + " ms |",
            cpu_row("pipeline", p.cpu),
        ]
        lines += [
            f"| in-task time during the burst, {name} | {count} × {mean:.1f} ms mean |"
            for name, (count, mean) in p.task_ms.items()
        ]
    for when, run in (("before", noop), ("after", results.noop_after)):
        if run is None:
            continue
        lines += [
            f"| raw Celery no-op tasks, {when} | {run.tasks} (sent in {run.send_seconds:.2f} s) |",
            f"| first send → last no-op done | {run.total_seconds:.2f} s |",
            f"| **raw no-op throughput, {when}** | **{run.per_second:.0f} tasks/s** |",
            cpu_row(f"no-op {when}", run.cpu),
        ]
        lines += [
            f"| in-task time, {name} | {count} × {mean:.2f} ms mean |"
            for name, (count, mean) in run.task_ms.items()
        ]
    rate = noop_rate(results)
    if p and rate:
        lines.append(f"| **ratio pipeline / raw no-op (mean)** | **{p.per_second / rate:.2f}** |")
    if serial:
        lines += [
            f"| serial, no Celery: Runtime.publish p50 ({serial.articles} articles) "
            f"| {serial.publish_p50_ms:.1f} ms |",
            f"| serial, no Celery: one rebuild_feed p50 / p99 ({2 * serial.articles} rebuilds) "
            f"| {serial.deliver_p50_ms:.1f} / {serial.deliver_p99_ms:.1f} ms |",
        ]
    lines += [
        f"| feed store filled to {size:,} articles (bulk insert) | {seconds:.1f} s, "
        f"{results.store_mb.get(size, 0):.0f} MB |"
        for size, seconds in sorted(results.populate_seconds.items())
    ]
    if remote := results.remote:
        lines += [
            f"| remote: articles × webhook | {remote.articles} ({remote.delivered} delivered) |",
            f"| publishing them ({p.publishers if p else '?'} processes) "
            f"| {remote.publish_seconds:.2f} s |",
            f"| first publish → last delivered | {remote.total_seconds:.2f} s |",
            f"| **remote throughput** | **{remote.per_second:.0f} deliveries/s** |",
        ]
        if remote.cpu is not None:
            lines.append(cpu_row("remote", remote.cpu))
        lines += [
            f"| in-task time during the remote burst, {name} | {count} × {mean:.1f} ms mean |"
            for name, (count, mean) in (remote.task_ms or {}).items()
        ]
    if results.rebuilds:
        lines += [
            "",
            f"| feed rebuild (median of {results.rebuilds[0].runs}) | articles in store "
            "| total | query | render | rest: save in store + write file |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r.channel} | {r.articles:,} | {r.total_ms:.1f} ms | {r.query_ms:.1f} ms "
            f"| {r.render_ms:.1f} ms | {r.total_ms - r.query_ms - r.render_ms:.1f} ms |"
            for r in results.rebuilds
        ]
    return "\n".join(lines)
