"""Every URL `publisher demo --keep` prints answers while it runs; the feeds,
which only `serve` serves over HTTP, are named as files that exist."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.server import free_port
from tests.conftest import write_matrix

CONFIG = Path(__file__).parents[2] / "config"


def test_demo_keep_prints_only_links_that_answer(tmp_path: Path) -> None:
    weibo_port, wechat_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {
            "site": {"type": "rss"},
            "app": {"type": "app_feed"},
            "weibo": {"type": "weibo", "base_url": f"http://127.0.0.1:{weibo_port}",
                      "sandbox": True, "access_token_env": "WEIBO_ACCESS_TOKEN"},
            "wechat": {"type": "wechat", "base_url": f"http://127.0.0.1:{wechat_port}",
                       "sandbox": True, "appid_env": "WECHAT_APPID",
                       "secret_env": "WECHAT_SECRET",
                       "default_cover": str(CONFIG / "default-cover.jpg")},
        },
        {"title": "Demo Daily", "home_page_url": "https://news.example.org/"},
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(PUBLISHER_CONFIG=str(matrix), PUBLISHER_DATA_DIR=str(tmp_path / "var"),
               COLUMNS="250")  # fmt: skip
    out_path = tmp_path / "demo.out"
    with out_path.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "publisher", "demo", "--keep"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "running until Ctrl-C" not in out_path.read_text(errors="replace"):
            assert demo.poll() is None and time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.5)
        printed = out_path.read_text()
        urls = set(re.findall(r"https?://127\.0\.0\.1:\d+[^\s│|,]*", printed))
        assert any(f":{weibo_port}/" in u for u in urls), printed
        for url in sorted(urls):
            assert requests.get(url, timeout=10).status_code == 200, url
        files = re.findall(r"(/\S+/feeds/[\w.]+\.(?:xml|json))", printed)
        assert files, printed
        for path in files:
            assert Path(path).is_file(), path
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=60)
