"""Injected faults across 200+ deliveries: every one ends delivered or failed
with a reason, and the platform sandboxes count zero duplicate posts.

    python bench/faults.py [--articles 40] [--fault-rate 0.15]

Articles × 5 channels (rss, app_feed, Weibo sandbox, WeChat sandbox with a
short token lifetime, a Mastodon-API server) through a real `publisher
worker` on the machine's Redis, with faults drawn at random on every remote
request: HTTP 5xx, platform error codes, expired tokens and timeouts
*after* the post was stored (the ambiguous case).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher.domain.article import parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox import wechat, weibo
from sandbox.platforms import SECRETS, Platforms
from sandbox.server import BackgroundServer

FAULTS = {
    "weibo": [
        ("/2/statuses/share.json", {"mode": "http", "status": 502}),
        ("/2/statuses/share.json", {"mode": "error", "code": 10001}),
        ("/2/statuses/share.json", {"mode": "timeout_after_store", "seconds": 1.5}),
        ("/2/statuses/share.json", {"mode": "error", "code": 10023}),
    ],
    "wechat": [
        ("/cgi-bin/material/add_material", {"mode": "http", "status": 503}),
        ("/cgi-bin/draft/add", {"mode": "error", "code": -1}),
        ("/cgi-bin/draft/add", {"mode": "timeout_after_store", "seconds": 1.5}),
        ("/cgi-bin/freepublish/submit", {"mode": "timeout_after_store", "seconds": 1.5}),
        ("/cgi-bin/freepublish/submit", {"mode": "error", "code": 40001}),
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=40)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument(
        "--redis", default=os.environ.get("PUBLISHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
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
    with tempfile.TemporaryDirectory() as tmp:
        matrix = platforms.matrix(timeout=1.0, backoff_base=0.2, backoff_cap=3.0, max_attempts=12)
        matrix["weibo"].update(posts_per_hour=36000, rate_limit_wait=2.0)
        matrix["wechat"]["token_refresh_margin"] = 2  # the 8 s tokens would always look stale
        stack = Stack(Path(tmp), matrix, redis_url=args.redis, prefix=prefix, env=SECRETS)
        try:
            for name, faults in FAULTS.items():
                server = getattr(platforms, name)
                for path, spec in faults:
                    platforms.fault(
                        server, path=path, count=10_000, probability=args.fault_rate, **spec
                    )
            stack.start_worker()
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
            stack.wait_settled(ids, timeout=600)
            elapsed = time.monotonic() - started
            report(stack, platforms, ids, elapsed, args)
        finally:
            stack.close()
            platforms.close()
            client = redis.Redis.from_url(args.redis)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
    return 0


def report(
    stack: Stack, platforms: Platforms, ids: list[str], elapsed: float, args: argparse.Namespace
) -> None:
    store = stack.runtime.store
    deliveries = store.deliveries(article_ids=ids, limit=100_000)
    states = Counter((d.channel, d.state) for d in deliveries)
    unexplained = [d.id for d in deliveries if d.state == State.FAILED and not d.last_error]
    unsettled = [d.id for d in deliveries if d.state not in (State.DELIVERED, State.FAILED)]
    attempts = Counter(a.outcome for d in deliveries for a in store.attempts(d.id))
    weibo, wechat_stats = platforms.stats(platforms.weibo), platforms.stats(platforms.wechat)
    print(
        f"deliveries: {len(deliveries)} ({args.articles} articles x 5 channels), "
        f"fault rate {args.fault_rate:.0%} per remote request, settled in {elapsed:.1f} s"
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
    print(f"failed without a reason: {len(unexplained)}; unsettled: {len(unsettled)}")
    ok = (
        not unexplained
        and not unsettled
        and weibo["duplicate_posts"] == 0
        and wechat_stats["duplicate_posts"] == 0
    )
    print("RESULT:", "PASS" if ok else "FAIL")


if __name__ == "__main__":
    raise SystemExit(main())
