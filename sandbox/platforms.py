"""Every platform stand-in on loopback at once, with the credentials each accepts:
the Weibo and WeChat sandboxes and a Mastodon-API server (the mastodon-mock
dev dependency). Tests and bench/faults.py share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from mastodon_mock.testing.server import MockServer

from sandbox import wechat, weibo
from sandbox.server import BackgroundServer

SECRETS = {
    "WEIBO_ACCESS_TOKEN": weibo.DEFAULT_TOKEN,
    "WECHAT_APPID": "wx-sandbox",
    "WECHAT_SECRET": wechat.DEFAULT_SECRET,
    "MASTODON_ACCESS_TOKEN": "alice_token",
}


class Platforms:
    def __init__(self, cover: Path | None = None) -> None:
        """`cover`: the WeChat channel's `default_cover` in `matrix()`."""
        self.cover = cover
        self.weibo = BackgroundServer(weibo.create_app()).start()
        self.wechat = BackgroundServer(wechat.create_app(publish_delay=0.2)).start()
        self.mastodon = MockServer()
        self.mastodon.__enter__()

    def matrix(self, **remote: Any) -> dict[str, dict[str, Any]]:
        return {
            "site": {"type": "rss"},
            "app": {"type": "app_feed"},
            "weibo": {"type": "weibo", "base_url": self.weibo.url,
                      "access_token_env": "WEIBO_ACCESS_TOKEN", **remote},
            "wechat": {"type": "wechat", "base_url": self.wechat.url, "appid_env": "WECHAT_APPID",
                       "secret_env": "WECHAT_SECRET", "publish_wait": 0.5,
                       "publish_poll_interval": 0.3,
                       **({"default_cover": str(self.cover)} if self.cover else {}), **remote},
            "fediverse": {"type": "mastodon", "base_url": self.mastodon.base_url,
                          "access_token_env": "MASTODON_ACCESS_TOKEN", **remote},
        }  # fmt: skip

    def stats(self, server: BackgroundServer) -> dict[str, Any]:
        return dict(requests.get(f"{server.url}/_control/stats", timeout=5).json())

    def fault(self, server: BackgroundServer, **spec: Any) -> None:
        requests.post(f"{server.url}/_control/faults", json=spec, timeout=5).raise_for_status()

    def close(self) -> None:
        self.weibo.stop()
        self.wechat.stop()
        self.mastodon.__exit__(None, None, None)
