"""Fault injection shared by every sandbox: one control API, one behaviour.

A test queues faults for an endpoint path; each matching request consumes
one. Modes:
- `error`: answer with the platform's error `code` (the sandbox decides the shape);
- `http`: answer with HTTP `status` (5xx, 429) and an empty body;
- `delay`: sleep `seconds`, then behave normally;
- `timeout_after_store`: do the work (the post is stored), then sleep
  `seconds` so the client times out: the ambiguous case.

`every = N` applies a fault to every Nth matching request only (the others
pass untouched), for a deterministic "one page in five fails".
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field

Mode = Literal["error", "http", "delay", "timeout_after_store"]


class FaultSpec(BaseModel):
    path: str = Field(description="endpoint path, e.g. /2/statuses/share.json")
    mode: Mode
    code: int | None = None
    status: int | None = None
    seconds: float = 0.0
    count: int = Field(default=1, ge=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    every: int = Field(default=1, ge=1)


@dataclass
class FaultInjector:
    faults: list[FaultSpec] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seed: int = 0
    seen: dict[int, int] = field(default_factory=dict)  # matching requests per `every` spec

    def add(self, spec: FaultSpec) -> None:
        with self.lock:
            self.faults.append(spec)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def take(self, path: str) -> FaultSpec | None:
        """Consume one fault queued for `path` (probabilistic faults are drawn, in
        the order they were queued, until one fires)."""
        with self.lock:
            for spec in self.faults:
                if spec.path != path:
                    continue
                # A spec that does not fire this time leaves the request to the next
                # one queued for the path: several faults on one path each get drawn.
                if spec.every > 1:
                    self.seen[id(spec)] = self.seen.get(id(spec), 0) + 1
                    if self.seen[id(spec)] % spec.every:
                        continue
                if spec.probability < 1.0 and random.random() >= spec.probability:
                    continue
                spec.count -= 1
                if spec.count <= 0:
                    self.faults.remove(spec)
                return spec.model_copy()
        return None


def control_router(
    injector: FaultInjector,
    stats: Callable[[], dict[str, Any]],
    reset: Callable[[], None],
) -> APIRouter:
    """`/_control/faults` (POST a FaultSpec, DELETE all), `/_control/stats`, `/_control/reset`."""
    router = APIRouter(prefix="/_control", tags=["control"])

    @router.post("/faults")
    def add_fault(spec: FaultSpec) -> dict[str, Any]:
        injector.add(spec)
        return {"queued": spec.model_dump()}

    @router.delete("/faults")
    def clear_faults() -> dict[str, Any]:
        injector.clear()
        return {"cleared": True}

    @router.get("/stats")
    def get_stats() -> dict[str, Any]:
        return stats()

    @router.post("/reset")
    def do_reset() -> dict[str, Any]:
        injector.clear()
        reset()
        return {"reset": True}

    return router


def install_fault_middleware(
    app: FastAPI,
    injector: FaultInjector,
    error_response: Callable[[int, str], Response],
) -> None:
    """Apply queued faults around every request; `error_response(code, path)` shapes `error`."""

    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/_control"):
            return await call_next(request)
        spec = injector.take(request.url.path)
        if spec is None:
            return await call_next(request)
        if spec.mode == "error":
            return error_response(spec.code or 0, request.url.path)
        if spec.mode == "http":
            return Response(status_code=spec.status or 500)
        if spec.mode == "delay":
            await asyncio.sleep(spec.seconds)
            return await call_next(request)
        response = await call_next(request)  # timeout_after_store: the work is done
        await asyncio.sleep(spec.seconds)
        return response
