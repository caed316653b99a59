"""Deadlines and caps on real loopback servers: a body dribbled one byte at a time ends at
the timeout, an endless answer stops at the cap, for images, partner feeds and platforms."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from channels.base import ChannelContext
from channels.http import request
from channels.images import PNG, fetch_image
from publisher.config.settings import Settings
from publisher.domain.errors import OutcomeUnknownError, RetryableError
from publisher.jobs.ingest import fetch as fetch_feed
from publisher.jobs.partner_feed import IngestError
from publisher.net.reading import MAX_ANSWER_BYTES

PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                if self.path.startswith("/dribble"):  # one byte every 0.3 s, for 60 s
                    self.wfile.write(PNG_HEAD)
                    for _ in range(200):
                        self.wfile.write(b"\x00")
                        self.wfile.flush()
                        time.sleep(0.3)
                else:  # endless
                    block = b"{" * 65536
                    for _ in range(2000):
                        self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    httpd = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def timed(call: Callable[[], Any]) -> float:
    start = time.monotonic()
    with pytest.raises(Exception) as caught:  # each caller checks the class
        call()
    elapsed = time.monotonic() - start
    timed.error = caught.value  # type: ignore[attr-defined]
    return elapsed


def test_an_image_download_ends_at_its_timeout_however_slowly_bytes_arrive(
    server: str, make_settings: Callable[..., Settings]
) -> None:
    context = ChannelContext(settings=make_settings(PUBLISHER_FETCH_ALLOW="127.0.0.1"))
    elapsed = timed(
        lambda: fetch_image(
            f"{server}/dribble.png",
            context,
            max_bytes=10_000_000,
            allowed_types=frozenset({PNG}),
            timeout=1.0,
        )
    )
    assert isinstance(timed.error, RetryableError)  # type: ignore[attr-defined]
    assert "too slow" in timed.error.reason  # type: ignore[attr-defined]
    assert elapsed < 1.5


def test_a_partner_feed_read_ends_at_its_timeout(server: str) -> None:
    from publisher.net.guard import Allowlist

    allow = Allowlist.parse(["127.0.0.1"])
    elapsed = timed(
        lambda: fetch_feed(
            f"{server}/dribble", etag=None, last_modified=None, timeout=1.0, allow=allow
        )
    )
    assert isinstance(timed.error, IngestError)  # type: ignore[attr-defined]
    assert elapsed < 1.5


def test_a_platform_answer_is_read_up_to_the_cap(server: str) -> None:
    with requests.Session() as session:
        elapsed = timed(lambda: request(session, "GET", f"{server}/endless", timeout=5, what="x"))
    error = timed.error  # type: ignore[attr-defined]
    assert isinstance(error, OutcomeUnknownError)
    assert f"larger than {MAX_ANSWER_BYTES:,} bytes" in error.reason
    assert elapsed < 5


def test_a_dribbling_platform_answer_ends_at_the_timeout(server: str) -> None:
    with requests.Session() as session:
        elapsed = timed(lambda: request(session, "GET", f"{server}/dribble", timeout=1, what="x"))
    assert isinstance(timed.error, OutcomeUnknownError)  # type: ignore[attr-defined]
    assert elapsed < 1.5
