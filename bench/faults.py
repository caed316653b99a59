"""Injected faults at newsroom scale: every delivery settles, none is lost,
none is posted twice, none fails.

    python bench/faults.py [--articles 400] [--transient-rate 0.2]
        [--ambiguous-rate 0.05] [--kill-every 20] [--redis-restart-at 30]
        [--database sqlite|postgresql://...]

Articles × 5 channels (rss, app_feed, Weibo sandbox, WeChat sandbox with a
short token lifetime, a Mastodon-API server) through real `publisher worker`
processes on a Redis server of the bench's own (so it can be killed and
restarted empty without touching anyone else's), with faults drawn at random
on every remote request: transient ones (HTTP 5xx, platform busy and rate
limit codes, expired tokens) and ambiguous ones (a timeout *after* the post
was stored). The Mastodon-API server fails its first status posts with 503.
Every `--kill-every` seconds the worker is SIGKILLed and a new one started;
at `--redis-restart-at` seconds Redis is killed and restarted empty (every
queued task is lost: the sweeper must find them all again).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.domain.article import parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox import wechat, weibo
from sandbox.platforms import SECRETS, Platforms
from sandbox.server import BackgroundServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schemas import Schemas  # bench/schemas.py

#: Transient faults: the platform did nothing and says so (or stays silent with a 5xx).
TRANSIENT = {
    "weibo": [
        ("/2/statuses/share.json", {"mode": "http", "status": 502}),
        ("/2/statuses/share.json", {"mode": "error", "code": 10001}),
        ("/2/statuses/share.json", {"mode": "error", "code": 10023}),
    ],
    "wechat": [
        ("/cgi-bin/material/add_material", {"mode": "http", "status": 503}),
        ("/cgi-bin/draft/add", {"mode": "error", "code": -1}),
        ("/cgi-bin/freepublish/submit", {"mode": "error", "code": 40001}),
    ],
}
#: Ambiguous faults: the post was stored, then the answer never came.
AMBIGUOUS = {
    "weibo": [("/2/statuses/share.json", {"mode": "timeout_after_store", "seconds": 1.5})],
    "wechat": [
        ("/cgi-bin/draft/add", {"mode": "timeout_after_store", "seconds": 1.5}),
        ("/cgi-bin/freepublish/submit", {"mode": "timeout_after_store", "seconds": 1.5}),
    ],
}


class OwnRedis:
    """A redis-server of the bench's own, on a free port, that keeps nothing on disk."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the bench's redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


class Chaos(threading.Thread):
    """SIGKILL the worker every `every` seconds and start another; kill Redis once."""

    def __init__(self, stack: Stack, own: OwnRedis, every: float, restart_at: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.own, self.every, self.restart_at = stack, own, every, restart_at
        self.stopped = threading.Event()
        self.kills = 0
        self.redis_restarts = 0

    def run(self) -> None:
        started = time.monotonic()
        next_kill = started + self.every
        while not self.stopped.wait(0.2):
            now = time.monotonic()
            if self.redis_restarts == 0 and 0 < self.restart_at <= now - started:
                self.own.kill()
                self.own.start()  # empty: every queued task and lock is gone
                self.redis_restarts += 1
            if self.every > 0 and now >= next_kill:
                for worker in list(self.stack.workers):
                    if worker.poll() is None:
                        self.stack.kill(worker)
                self.stack.start_worker()
                self.kills += 1
                next_kill = now + self.every


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--transient-rate", type=float, default=0.2)
    parser.add_argument("--ambiguous-rate", type=float, default=0.05)
    parser.add_argument("--kill-every", type=float, default=20.0, help="0: never")
    parser.add_argument("--redis-restart-at", type=float, default=30.0, help="0: never")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' or a postgresql:// server (a schema of its own)",
    )
    args = parser.parse_args()
    own = OwnRedis()
    own.start()
    os.environ.update(SECRETS)
    platforms = Platforms(
        cover=Path(__file__).resolve().parents[1]
        / "publisher"
        / "local"
        / "demo_samples"
        / "skills-contest.jpg"
    )
    platforms.wechat.stop()  # replace with a short token lifetime: tokens expire mid-run
    platforms.wechat = BackgroundServer(wechat.create_app(publish_delay=0.2, token_lifetime=8))
    platforms.wechat.start()
    platforms.weibo.stop()  # the real hourly limit would stall a 200-delivery run for an hour
    platforms.weibo = BackgroundServer(weibo.create_app(hourly_limit=100_000)).start()
    prefix = f"bench-faults-{uuid.uuid4().hex[:8]}:"
    # A killed worker's delivery is taken over when its lease ends, and the
    # sweeper's beat lock passes to the next worker when it lapses: both short
    # here so the run is not mostly waiting for them. The lease is not the kill
    # period: with both 20 s, a delivery taken over when its lease ended was
    # claimed again a moment before each next kill, for as long as the run went on.
    env = {**SECRETS, "PUBLISHER_LEASE_SECONDS": "13", "PUBLISHER_BEAT_LOCK_SECONDS": "5",
           "PUBLISHER_REQUEUE_AFTER": "10"}  # fmt: skip
    schemas = None if args.database == "sqlite" else Schemas(args.database, prefix.rstrip(":"))
    if schemas is not None:
        env["DATABASE_URL"] = schemas.new("store")
    chaos: Chaos | None = None
    with tempfile.TemporaryDirectory() as tmp:
        matrix = platforms.matrix(timeout=1.0, backoff_base=0.2, backoff_cap=3.0, max_attempts=12)
        matrix["weibo"].update(posts_per_hour=36000, posts_burst=50, rate_limit_wait=2.0)
        matrix["wechat"]["token_refresh_margin"] = 2  # the 8 s tokens would always look stale
        stack = Stack(Path(tmp), matrix, redis_url=own.url, prefix=prefix, env=env)
        try:
            for rate, table in ((args.transient_rate, TRANSIENT), (args.ambiguous_rate, AMBIGUOUS)):
                for name, faults in table.items():
                    server = getattr(platforms, name)
                    for path, spec in faults:
                        # Each of a path's faults is drawn apart: split the rate between them.
                        share = rate / sum(p == path for p, _ in faults)
                        platforms.fault(server, path=path, count=10**6, probability=share, **spec)
            requests.post(  # the mock's own fault control plane
                f"{platforms.mastodon.base_url}/api/v1/_mock/faults",
                json={
                    "match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                    "effect": {"type": "status", "status": 503},
                    "count": max(1, int(args.articles * args.transient_rate)),
                },
                timeout=5,
            ).raise_for_status()
            stack.start_worker()
            chaos = Chaos(stack, own, args.kill_every, args.redis_restart_at)
            chaos.start()
            started = time.monotonic()
            ids = []
            for n in range(args.articles):
                article = parse_article(
                    {
                        "id": f"bench-{n}",
                        "url": f"https://news.example.org/b{n}.html",
                        "title": f"Bench story {n}",
                        "body_html": f"<p>Story {n}.</p>",
                        "published_at": "2026-11-20T08:00:00+08:00",
                    }
                )
                ids.append(stack.runtime.publish(article).article_id)
            stack.wait_settled(ids, timeout=args.timeout)
            elapsed = time.monotonic() - started
            chaos.stopped.set()
            ok = report(stack, platforms, ids, elapsed, args, chaos)
        finally:
            if chaos is not None:
                chaos.stopped.set()
            stack.close()
            platforms.close()
            own.kill()
            if schemas is not None:
                schemas.drop()
    return 0 if ok else 1


def mastodon_copies(platforms: Platforms) -> Counter[str]:
    """Statuses on the Mastodon-API server per article link: 1 each, or a duplicate."""
    reader = platforms.mastodon.client()
    page = reader.account_statuses(reader.me()["id"], limit=40)
    counted: Counter[str] = Counter()
    while page:
        for status in page:
            link = status["content"].split("https://news.example.org/")[-1].split('"')[0]
            counted[link] += 1
        page = reader.fetch_next(page)
    return counted


def report(
    stack: Stack,
    platforms: Platforms,
    ids: list[str],
    elapsed: float,
    args: argparse.Namespace,
    chaos: Chaos,
) -> bool:
    store = stack.runtime.store
    deliveries = store.deliveries(article_ids=ids, limit=100_000)
    states = Counter((d.channel, d.state) for d in deliveries)
    unexplained = [d.id for d in deliveries if d.state == State.FAILED and not d.last_error]
    unsettled = [d.id for d in deliveries if d.state not in (State.DELIVERED, State.FAILED)]
    attempts = Counter(a.outcome for d in deliveries for a in store.attempts(d.id))
    weibo, wechat_stats = platforms.stats(platforms.weibo), platforms.stats(platforms.wechat)
    failed = [d.id for d in deliveries if d.state == State.FAILED]
    toots = mastodon_copies(platforms)
    toot_duplicates = sum(n - 1 for n in toots.values() if n > 1)
    print(
        f"deliveries: {len(deliveries)} ({args.articles} articles x 5 channels), "
        f"faults per remote request: {args.transient_rate:.0%} transient, "
        f"{args.ambiguous_rate:.0%} ambiguous; worker SIGKILLed {chaos.kills} times, "
        f"Redis restarted empty {chaos.redis_restarts} times; settled in {elapsed:.1f} s"
    )
    for (channel, state), n in sorted(states.items()):
        print(f"  {channel:10} {state:10} {n}")
    print(f"attempt outcomes: {dict(attempts)}")
    print(f"weibo sandbox: posts {weibo['posts']}, duplicate_posts {weibo['duplicate_posts']}")
    print(
        f"wechat sandbox: published {wechat_stats['published']}, drafts created "
        f"{wechat_stats['drafts_created']}, token fetches {wechat_stats['token_fetches']}, "
        f"duplicate_posts {wechat_stats['duplicate_posts']}"
    )
    print(f"mastodon server: statuses {sum(toots.values())}, duplicate_posts {toot_duplicates}")
    lost = len(ids) * 5 - len(deliveries)
    print(
        f"failed: {len(failed)} (without a reason: {len(unexplained)}); unsettled: "
        f"{len(unsettled)}; lost: {lost}"
    )
    ok = (
        not failed
        and not unsettled
        and lost == 0
        and weibo["duplicate_posts"] == 0
        and wechat_stats["duplicate_posts"] == 0
        and toot_duplicates == 0
        and weibo["posts"] == wechat_stats["published"] == sum(toots.values()) == len(ids)
    )
    print("RESULT:", "PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
