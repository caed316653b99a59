"""A loopback proxy that lets a request reach the server and holds back the answer.

It stands in for the network between a worker and a Mastodon instance, not
for any of our code: every request goes to the real server (mastodon-mock)
unchanged; from the `hold_from`-th POST to `path` on, the server has stored
the post but the answer waits until `release()`. A worker killed meanwhile
died after the platform took the post and before its checkpoint could say so.
From the `refuse_from`-th on, the POST is refused (422) instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import requests
from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "content-encoding"}


@dataclass
class HeldAnswers:
    upstream: str
    path: str
    hold_from: int | None = None
    #: From this POST on, answer 422 (content refused) without passing it on.
    refuse_from: int | None = None
    url: str = ""  # where the proxy listens, once started
    posts: int = 0
    held: threading.Event = field(default_factory=threading.Event)  # an answer is held
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        self.released.set()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def forward(rest: str, request: Request) -> Response:
            body = await request.body()
            return await run_in_threadpool(self._forward, request, body)

        return app

    def _forward(self, request: Request, body: bytes) -> Response:
        hold = False
        if request.method == "POST" and request.url.path == self.path:
            with self.lock:
                self.posts += 1
                if self.refuse_from is not None and self.posts >= self.refuse_from:
                    refused = b'{"error": "Validation failed: Text is refused"}'
                    return Response(refused, status_code=422, media_type="application/json")
                hold = self.hold_from is not None and self.posts >= self.hold_from
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = requests.request(
            request.method,
            self.upstream + request.url.path,
            params=list(request.query_params.multi_items()),
            data=body,
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )
        if hold and not self.released.is_set():
            self.held.set()
            self.released.wait(60)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=kept)
