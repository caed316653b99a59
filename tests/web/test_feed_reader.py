"""A follower's real feed reader: newsboat polling the feeds the API serves.

The API runs on loopback over a real worker (feeds are built by the worker,
served from the store with ETags); newsboat runs headless (`-x reload`) with
its own URL list, config and cache, and what it shows is read from its
SQLite cache. It must list each article once however often it polls, and
show a corrected title in place of the old one: same guid, one item.

Needs Debian's `newsboat` (`make system-deps` installs it); skipped without it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from publisher.domain.states import State
from publisher.local.cluster import Stack
from publisher.web.api import create_app
from sandbox.server import BackgroundServer
from tests.conftest import TEST_REDIS_URL

NEWSBOAT = shutil.which("newsboat")
pytestmark = pytest.mark.skipif(
    NEWSBOAT is None,
    reason="newsboat is not installed: `apt-get install newsboat` (or `make system-deps`)",
)
FEEDS = {"site": {"type": "rss"}, "app": {"type": "app_feed"}}
TOKEN = "reader-test-token"
#: What newsboat reads (2.21 has no JSON Feed support). One follower each: newsboat
#: keys its cache by guid across all feeds, and both documents use the article's.
DOCUMENTS = ("rss.xml", "atom.xml")


class Newsboat:
    """One follower's newsboat: a URL list, a config, a cache, polled headless."""

    def __init__(self, home: Path, urls: list[str]) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.urls = home / "urls"
        self.urls.write_text("".join(f"{url}\n" for url in urls))
        self.config = home / "config"
        self.config.write_text("download-timeout 20\nreload-threads 1\n")
        self.cache = home / "cache.db"
        self.log = home / "newsboat.log"
        # Loopback must not go through whatever proxy the machine's environment names.
        proxies = {"http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"}
        self.env = {k: v for k, v in os.environ.items() if k not in proxies}
        self.env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1")

    def poll(self) -> None:
        assert NEWSBOAT is not None
        done = subprocess.run(
            [NEWSBOAT, "-q", "-u", str(self.urls), "-c", str(self.cache), "-C", str(self.config),
             "-l", "5", "-d", str(self.log), "-x", "reload"],
            env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + self.tail()

    def items(self) -> list[dict[str, Any]]:
        """What the follower sees: every item newsboat keeps, per feed URL."""
        with sqlite3.connect(self.cache) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT feedurl, guid, title, url FROM rss_item WHERE deleted = 0 ORDER BY feedurl"
            ).fetchall()
        return [dict(row) for row in rows]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def served(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[tuple[Stack, str]]:
    """A worker and the API on loopback over one stack; yields the stack and the API's URL."""
    prefix = f"{redis_prefix}reader-{uuid.uuid4().hex[:8]}:"
    stack = Stack(
        tmp_path, FEEDS, redis_url=TEST_REDIS_URL, prefix=prefix,
        env={"PUBLISHER_API_TOKENS": f"desk:{TOKEN}"},
    )  # fmt: skip
    try:
        stack.start_worker()
        with BackgroundServer(create_app(stack.runtime)) as server:
            yield stack, server.url
    finally:
        stack.close()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


def story(n: int, title: str) -> dict[str, Any]:
    return {
        "id": f"reader-{n}",
        "url": f"https://news.example.org/reader-{n}.html",
        "title": title,
        "body_html": f"<p>Story {n} for the feed reader.</p>",
        "published_at": f"2026-11-2{n}T08:00:00+08:00",
    }


def publish(stack: Stack, base: str, article: dict[str, Any]) -> dict[str, Any]:
    """Post as an editor, then wait until the deliveries settle and the feeds are rebuilt."""
    response = requests.post(
        f"{base}/api/articles", json=article, timeout=30,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    stack.wait_settled([article["id"]])
    store = stack.runtime.store
    stack.wait_until(lambda: not any(store.feed_changed_since_build(c) for c in FEEDS))
    assert {d.state for d in store.deliveries(article_ids=[article["id"]])} == {State.DELIVERED}
    return dict(response.json())


def seen(reader: Newsboat, feed: str) -> dict[str, str]:
    """guid → title of what the follower has, asserting no guid or link is listed twice."""
    items = reader.items()
    assert {item["feedurl"] for item in items} <= {feed}, items
    guids = [item["guid"] for item in items]
    links = [item["url"] for item in items]
    assert len(guids) == len(set(guids)) and len(links) == len(set(links)), items
    return {item["guid"]: item["title"] for item in items}


def test_newsboat_sees_each_article_once_and_the_correction_in_place(
    served: tuple[Stack, str], tmp_path: Path
) -> None:
    stack, base = served
    feeds = {name: f"{base}/feeds/{name}" for name in DOCUMENTS}
    readers = {name: Newsboat(tmp_path / name, [url]) for name, url in feeds.items()}

    publish(stack, base, story(1, "Skills contest opens in Shanghai"))
    publish(stack, base, story(2, "Rail workers win pay rise"))
    first: dict[str, dict[str, str]] = {}
    for name, reader in readers.items():
        reader.poll()
        reader.poll()  # the second poll is answered 304 (ETag), or with the same items
        first[name] = seen(reader, feeds[name])
        assert sorted(first[name].values()) == [
            "Rail workers win pay rise",
            "Skills contest opens in Shanghai",
        ], (name, first[name], reader.tail())

    corrected = publish(stack, base, story(1, "Skills contest opens in Shanghai, 2,000 compete"))
    assert corrected["version"] == 2 and corrected["changed"] is True
    for name, reader in readers.items():
        reader.poll()
        reader.poll()
        after = seen(reader, feeds[name])
        assert set(after) == set(first[name]), (name, after)  # the same items, same guids
        assert sorted(after.values()) == [
            "Rail workers win pay rise",
            "Skills contest opens in Shanghai, 2,000 compete",
        ], (name, after, reader.tail())
