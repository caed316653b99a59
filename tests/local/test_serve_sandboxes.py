"""`publisher serve` starts a sandbox only where the matrix asks for one.

A channel whose `base_url` is on loopback may point at a newsroom's own
gateway or a test double already listening there; `serve` must leave that
port alone and deliver to whatever answers on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from publisher.config.settings import Settings
from sandbox import weibo
from sandbox.runner import sandboxed_channels
from sandbox.server import BackgroundServer, free_port
from tests.conftest import TEST_REDIS_URL, write_matrix

TOKEN = "serve-desk-token"
ARTICLE = {
    "id": "foreign-1", "url": "https://news.example.org/foreign-1",
    "title": "A post for the gateway", "body_html": "<p>Delivered to whoever listens.</p>",
}  # fmt: skip


def test_serve_delivers_to_a_foreign_server_on_loopback(
    tmp_path: Path, redis_prefix: str, redis_client: redis.Redis
) -> None:
    foreign = BackgroundServer(weibo.create_app()).start()  # not ours to start: it runs
    prefix = f"{redis_prefix}serve-{uuid.uuid4().hex[:6]}:"
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {"weibo": {"type": "weibo", "base_url": foreign.url,
                   "access_token_env": "WEIBO_ACCESS_TOKEN"}},
        {"title": "Serve Daily", "home_page_url": "https://news.example.org/"},
    )  # fmt: skip
    env = {
        **os.environ,
        "PUBLISHER_CONFIG": str(matrix),
        "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix,
        "REDIS_URL": TEST_REDIS_URL,
        "PUBLISHER_API_TOKENS": f"desk:{TOKEN}",
        "WEIBO_ACCESS_TOKEN": weibo.DEFAULT_TOKEN,
        "PUBLISHER_SWEEP_INTERVAL": "0.5",
    }
    port = free_port("127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "publisher", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {TOKEN}"

    def wait(condition: object, what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if callable(condition) and condition():
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{what}: timed out\n{(tmp_path / 'serve.log').read_text()}")

    try:
        wait(lambda: api.get(f"{base}/healthz", timeout=5).ok, "the API")
        posted = api.post(f"{base}/api/articles", json=ARTICLE, timeout=10)
        assert posted.status_code == 202, posted.text

        def delivered() -> bool:
            detail = api.get(f"{base}/api/articles/foreign-1", timeout=10).json()
            return [d["state"] for d in detail["deliveries"]] == ["delivered"]

        wait(delivered, "the weibo delivery")
        timeline = requests.get(
            f"{foreign.url}/2/statuses/user_timeline.json",
            params={"access_token": weibo.DEFAULT_TOKEN}, timeout=10,
        ).json()  # fmt: skip
        assert timeline["total_number"] == 1
        assert "A post for the gateway" in timeline["statuses"][0]["text"]
    finally:
        api.close()
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()
        foreign.stop()
        for key in redis_client.scan_iter(match=f"{prefix}*"):
            redis_client.delete(key)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"type": "webhook", "base_url": "http://127.0.0.1:9/h", "sandbox": True},
         "channels.x.sandbox: there is no webhook sandbox"),
        ({"type": "weibo", "base_url": "https://api.weibo.com", "sandbox": True,
          "access_token_env": "T"}, "channels.x.sandbox: base_url must be on this machine"),
    ],
)  # fmt: skip
def test_a_sandbox_is_asked_for_only_where_one_can_run(
    tmp_path: Path, table: dict[str, object], problem: str
) -> None:
    matrix = write_matrix(tmp_path / "m.toml", {"x": table}, {"title": "T"})
    settings = Settings.load({"PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(tmp_path)})
    with pytest.raises(Exception, match=problem):
        sandboxed_channels(settings)


def test_the_example_matrix_asks_for_its_sandboxes() -> None:
    example = Path(__file__).parents[2] / "config" / "matrix.toml"
    settings = Settings.load({"PUBLISHER_CONFIG": str(example)})
    assert sorted(c.name for c in sandboxed_channels(settings)) == ["wechat", "weibo"]
