"""Every channel of a matrix, end to end through a real worker and Redis:
the Weibo and WeChat sandboxes and a real Mastodon-API server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests
from mastodon import Mastodon

from publisher.domain.article import load_article_file, parse_article
from publisher.domain.states import State
from publisher.local.cluster import Stack
from sandbox.platforms import SECRETS, Platforms
from tests.conftest import SAMPLES
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture


@pytest.fixture
def platforms() -> Iterator[Platforms]:
    p = Platforms(cover=SAMPLES / "skills-contest.jpg")
    yield p
    p.close()


def test_samples_reach_every_channel(
    make_stack: Callable[..., Stack],  # noqa: F811
    platforms: Platforms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    stack = make_stack(platforms.matrix(), **SECRETS)
    stack.start_worker()
    ids = [stack.runtime.publish(load_article_file(SAMPLES / name)).article_id
           for name in ("digital-talent.json", "skills-contest.md")]  # fmt: skip
    stack.wait_settled(ids, timeout=90)
    deliveries = stack.runtime.store.deliveries(article_ids=ids)
    assert {(d.channel, d.state) for d in deliveries} == {
        (c, State.DELIVERED) for c in ("site", "app", "weibo", "wechat", "fediverse")
    }, [(d.channel, d.state, d.last_error) for d in deliveries]

    # What followers see on each platform.
    timeline = requests.get(f"{platforms.weibo.url}/", timeout=5).text
    assert "全国数字技能大赛决赛开幕" in timeline and "Contribute" in timeline
    articles = requests.get(f"{platforms.wechat.url}/", timeout=5).text
    assert "全国数字技能大赛决赛开幕" in articles
    for d in deliveries:
        if d.channel == "wechat":
            page = requests.get(str(d.remote_url), timeout=5)
            assert page.status_code == 200 and "<script" not in page.text
    reader = Mastodon(access_token="alice_token", api_base_url=platforms.mastodon.base_url)
    statuses = reader.account_statuses(reader.me()["id"])
    assert len(statuses) == 2
    assert platforms.stats(platforms.weibo)["duplicate_posts"] == 0
    assert platforms.stats(platforms.wechat)["duplicate_posts"] == 0

    # `publisher status` shows where each one lives.
    status = subprocess.run(
        [sys.executable, "-m", "publisher", "status", "2026-11-20-skills-contest"],
        env={**stack.env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    for d in deliveries:
        if d.article_id == "2026-11-20-skills-contest":
            assert str(d.remote_url) in status.stdout
    for secret in SECRETS.values():
        assert secret not in status.stdout + stack.logs()


@pytest.mark.slow
def test_injected_faults_end_settled_with_zero_duplicates(
    make_stack: Callable[..., Stack],  # noqa: F811
    platforms: Platforms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The short CI form of `bench/faults.py` (which runs 200+ deliveries)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    count = int(os.environ.get("PUBLISHER_FAULT_ARTICLES", "6"))
    matrix = platforms.matrix(timeout=1.0, backoff_base=0.2, backoff_cap=2.0, max_attempts=10)
    matrix["weibo"]["posts_per_hour"] = 3600  # retries spend the shared budget too
    stack = make_stack(matrix, **SECRETS)
    share, draft = "/2/statuses/share.json", "/cgi-bin/draft/add"
    platforms.fault(platforms.weibo, path=share, mode="http", status=502, count=2)
    platforms.fault(platforms.weibo, path=share, mode="error", code=10001, count=2)
    platforms.fault(platforms.weibo, path=share, mode="timeout_after_store", seconds=1.5, count=2)
    platforms.fault(platforms.wechat, path=draft, mode="error", code=-1, count=2)
    platforms.fault(platforms.wechat, path=draft, mode="timeout_after_store", seconds=1.5, count=2)
    platforms.fault(platforms.wechat, path="/cgi-bin/freepublish/submit", mode="error",
                    code=40001, count=1)  # fmt: skip
    stack.start_worker()
    ids = []
    for n in range(count):
        article = parse_article({
            "id": f"fault-{n}", "url": f"https://news.example.org/f{n}.html",
            "title": f"Fault run story {n}", "body_html": f"<p>Story {n} of the fault run.</p>",
            "published_at": "2026-11-20T08:00:00+08:00",
        })  # fmt: skip
        ids.append(stack.runtime.publish(article).article_id)
    stack.wait_settled(ids, timeout=180)
    deliveries = stack.runtime.store.deliveries(article_ids=ids)
    assert all(d.state == State.DELIVERED or (d.state == State.FAILED and d.last_error)
               for d in deliveries)  # fmt: skip
    assert Counter(d.state for d in deliveries)[State.DELIVERED] == 5 * count
    assert platforms.stats(platforms.weibo)["duplicate_posts"] == 0
    assert platforms.stats(platforms.weibo)["posts"] == count
    assert platforms.stats(platforms.wechat)["duplicate_posts"] == 0
    assert platforms.stats(platforms.wechat)["published"] == count
