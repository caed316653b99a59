"""`PlatformSession` reads the proxy environment once per origin, and still
honours it: a post goes through the proxy `HTTP_PROXY` names, unless
`NO_PROXY` exempts its host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests

from channels.http import PlatformSession, request


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers itself: it records the absolute URL it was asked for."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(self.path)
        body = json.dumps({"id": "1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[str]:
    _Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_posts_go_through_the_environments_proxy(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "")
    session = PlatformSession()
    for n in range(3):
        response = request(
            session, "POST", f"http://platform.invalid/post/{n}", json={}, timeout=5, what="post"
        )
        assert response.json() == {"id": "1"}
    assert _Proxy.seen == [f"http://platform.invalid/post/{n}" for n in range(3)]


def test_the_environment_is_read_as_requests_reads_it_once_per_origin(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "exempt.example")
    session, plain = PlatformSession(), requests.Session()
    for url in ("https://api.example/x", "https://exempt.example/y"):
        ours = session.merge_environment_settings(url, {}, None, None, None)
        theirs = plain.merge_environment_settings(url, {}, None, None, None)
        assert ours == theirs
    assert "https" not in ours["proxies"]  # NO_PROXY exempts the host
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # read once: kept for the session
    again = session.merge_environment_settings("https://api.example/z", {}, None, None, None)
    assert again["proxies"]["https"] == proxy
