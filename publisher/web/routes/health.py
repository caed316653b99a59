"""/healthz and /metrics: what operators and their load balancers ask."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry

from publisher.web.context import CurrentRuntime
from publisher.web.errors import documented_errors
from publisher.web.metrics import exposition, metrics_registry
from publisher.web.schemas import Health
from publisher.worker.runtime import Runtime

#: How long /healthz waits for each part before calling it down.
HEALTH_TIMEOUT = 3.0

router = APIRouter(tags=["operations"])
reads = APIRouter(tags=["operations"])


@dataclass(frozen=True)
class Probes:
    """Per app: a broker client with timeouts (a probe or a scrape must not hang
    on a dead Redis, as the runtime's own client would) and the metrics registry."""

    broker: redis.Redis
    registry: CollectorRegistry

    @classmethod
    def of(cls, runtime: Runtime) -> Probes:
        broker = redis.Redis.from_url(
            runtime.location.client_url, socket_timeout=HEALTH_TIMEOUT,
            socket_connect_timeout=HEALTH_TIMEOUT,
        )  # fmt: skip
        return cls(broker, metrics_registry(runtime, broker))


async def current_probes(request: Request) -> Probes:
    probes: Probes = request.app.state.probes
    return probes


CurrentProbes = Annotated[Probes, Depends(current_probes)]


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a part is down; `checks` says which"}},
    summary="Is the database and the broker reachable",
)
async def healthz(response: Response, runtime: CurrentRuntime, probes: CurrentProbes) -> Health:
    results = await asyncio.gather(
        _check(runtime.store.ping, HEALTH_TIMEOUT),
        _check(probes.broker.ping, HEALTH_TIMEOUT),
    )
    checks = dict(zip(("database", "broker"), results, strict=True))
    healthy = all(v == "ok" for v in checks.values())
    response.status_code = 200 if healthy else 503
    return Health(status="ok" if healthy else "unavailable", checks=checks)


@reads.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}},
        **documented_errors(503),
    },
    summary="Prometheus metrics",
)
def metrics(probes: CurrentProbes) -> Response:
    return exposition(probes.registry)


async def _check(probe: Callable[[], object], timeout: float) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # any failure is the answer; never show URLs or passwords
        return f"unavailable ({type(exc).__name__})"
    return "ok"
