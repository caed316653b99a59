"""Secrets never reach a log line: with DEBUG on, urllib3's URL lines, exception texts and
our own messages come out with access tokens, query secrets, bearer tokens and the
deployment's own secret values masked."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from publisher.cli import main as cli
from publisher.config.settings import Settings
from publisher.net.redact import MASK, install_log_redaction, redact

TOKEN = "wx-access-token-0123456789"
APP_SECRET = "app-secret-abcdef987654"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_urllib3_debug_lines_are_redacted(
    server: str, debug_logs: Collect, make_settings: Callable[..., Settings], monkeypatch: Any
) -> None:
    monkeypatch.setenv("WX_TEST_SECRET", APP_SECRET)
    settings = make_settings(
        {"wx": {"type": "wechat", "base_url": server, "appid_env": "WX_A",
                "secret_env": "WX_TEST_SECRET"}},
        PUBLISHER_API_TOKENS="desk:desk-token-secret-42",
    )  # fmt: skip
    install_log_redaction(settings)
    url = f"{server}/cgi-bin/draft/add?access_token={TOKEN}&secret={APP_SECRET}&type=image"
    requests.get(url, timeout=5, headers={"Authorization": "Bearer desk-token-secret-42"})
    logging.getLogger("publisher.test").debug("calling %s with %s", url, APP_SECRET)
    try:
        raise RuntimeError(f"failed: {url}")
    except RuntimeError:
        logging.getLogger("publisher.test").exception("boom")
    text = "\n".join(debug_logs.lines)
    assert "/cgi-bin/draft/add?access_token=" in text  # urllib3 did log the URL
    for secret in (TOKEN, APP_SECRET, "desk-token-secret-42"):
        assert secret not in text
    assert MASK in text and "type=image" in text


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("GET /x?access_token=abc123&b=1", "GET /x?access_token=[redacted]&b=1"),
        ("url=https://a/?Token=zz#frag", "url=https://a/?Token=[redacted]#frag"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("secret=s1 and appsecret=s2", "secret=[redacted] and appsecret=[redacted]"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redaction_patterns(line: str, kept: str) -> None:
    assert redact(line) == kept


def test_the_cli_installs_redaction_before_any_command(
    debug_logs: Collect, tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PUBLISHER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PUBLISHER_API_TOKENS", "desk:cli-secret-token-77")
    assert cli.main(["-v", "migrate"]) == 0
    logging.getLogger("urllib3.test").debug("GET /?access_token=zzz with cli-secret-token-77")
    assert debug_logs.lines[-1].endswith("GET /?access_token=[redacted] with [redacted]")
