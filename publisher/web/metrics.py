"""/metrics: what a Prometheus scrape reports, read at scrape time.

The numbers come from the store and the broker (`queries.StoreCollector`), not
from this process's memory, so every API replica on every machine answers the
same; the registry is per app, never the process-global default.
"""

from __future__ import annotations

import redis
from fastapi import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from publisher.web.queries import StoreCollector
from publisher.worker.runtime import Runtime


def metrics_registry(runtime: Runtime, broker: redis.Redis) -> CollectorRegistry:
    """A registry over `runtime`'s store and `broker` (a client with timeouts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime, broker))
    return registry


def exposition(registry: CollectorRegistry) -> Response:
    """One scrape, in Prometheus's text format."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
