"""Reading an HTTP answer with a byte cap and a wall-clock deadline.

A socket timeout bounds each wait for bytes, not the whole read: a server
sending one byte every 1.5 s held `fetch_image(timeout=3)` for 63 s, and a
platform (or a proxy in front of it) can answer with an endless body that
fills memory. `read_capped` reads a streamed `requests` response in the
pieces that arrive (`read1`), lowering the socket's timeout before each read
to what is left of the deadline, so the read ends at the deadline however
slowly bytes come, and stops as soon as the body passes `max_bytes`.
"""

from __future__ import annotations

import time
from typing import Any

import requests
import urllib3

from publisher.domain.errors import PublisherError

CHUNK = 64 * 1024
#: What a platform, partner or webhook answer may hold before reading stops.
MAX_ANSWER_BYTES = 2 * 1024 * 1024


class ReadProblem(PublisherError):
    """The body could not be read whole; the subclass says why."""


class TooLarge(ReadProblem):
    """The body passed the cap."""


class TooSlow(ReadProblem):
    """The deadline passed before the body ended."""


class ReadFailed(ReadProblem):
    """The connection failed while reading."""


def read_capped(response: requests.Response, *, max_bytes: int, deadline: float) -> bytes:
    """The body of a `stream=True` response; `deadline` is a `time.monotonic()` value."""
    raw: Any = response.raw
    body = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TooSlow()
        _limit_wait(raw, remaining)
        try:
            chunk = raw.read1(CHUNK)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise TooSlow() from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            raise ReadFailed() from None
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            response.close()
            raise TooLarge()


def _limit_wait(raw: Any, seconds: float) -> None:
    """Let the next socket read wait at most `seconds` (the connection stays with a
    streamed response until it is read or closed)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(0.001, seconds))
