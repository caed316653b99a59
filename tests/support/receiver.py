"""A remote HTTP endpoint for the webhook channel to post to, on loopback.

It stands in for a newsroom system at the other end of a webhook, not for
any of our code: it stores posts, honours `Idempotency-Key` (a repeat
returns the original, like Mastodon), and can be told to fail or stall.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse


@dataclass
class Receiver:
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> first post
    requests: list[tuple[float, str]] = field(default_factory=list)  # (time, key)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, headers or {})] * times)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            key = request.headers.get("Idempotency-Key", "")
            body = await request.json()
            with self.lock:
                self.requests.append((time.monotonic(), key))
                failure = self.failures.pop(0) if self.failures else None
                self.in_flight += 1
            try:
                if failure:
                    return Response(status_code=failure[0], headers=failure[1])
                if self.delay:
                    await asyncio.sleep(self.delay)
                with self.lock:
                    first = self.posts.setdefault(key, body)
                    number = list(self.posts).index(key) + 1
                return JSONResponse(
                    {
                        "id": str(number),
                        "url": f"https://archive.example.org/{number}",
                        "title": first["title"],
                    }
                )
            finally:
                with self.lock:
                    self.in_flight -= 1

        return app
