"""/metrics: what a Prometheus scrape reports, read at scrape time.

The numbers come from the store and the broker (`StoreCollector`), not
from this process's memory, so every API replica on every machine answers the
same; the registry is per app, never the process-global default.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from fastapi import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from publisher.domain.states import State
from publisher.worker.celery_app import queue_depths
from publisher.worker.runtime import Runtime

#: Attempt durations, in seconds, for the /metrics histogram.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def metrics_registry(runtime: Runtime, broker: redis.Redis) -> CollectorRegistry:
    """A registry over `runtime`'s store and `broker` (a client with timeouts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime, broker))
    return registry


def exposition(registry: CollectorRegistry) -> Response:
    """One scrape, in Prometheus's text format."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class StoreCollector:
    """Prometheus metrics read at scrape time from the store and the broker, so
    every API on every machine reports the same numbers."""

    def __init__(self, runtime: Runtime, broker: redis.Redis) -> None:
        self.runtime = runtime
        self.broker = broker  # a client with timeouts: a scrape must not hang

    def collect(self) -> Iterator[Metric]:
        snapshot = self.runtime.store.metrics(DURATION_BUCKETS)
        counts, durations, retries = snapshot.deliveries, snapshot.durations, snapshot.retries

        deliveries = GaugeMetricFamily(
            "publisher_deliveries", "Deliveries by channel and state.", labels=["channel", "state"]
        )
        seen = {(channel, state) for channel, state, _ in counts}
        for channel, state, n in counts:
            deliveries.add_metric([channel, state], n)
        for channel in self.runtime.settings.channels:  # zeros, so rates have a baseline
            for state in State:
                if (channel, state.value) not in seen:
                    deliveries.add_metric([channel, state.value], 0)
        yield deliveries

        histogram = HistogramMetricFamily(
            "publisher_attempt_duration_seconds",
            "Duration of delivery attempts, by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for channel, outcome, total_ms, count, *cumulative in durations:
            buckets = [
                (str(b), int(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", int(count)))
            histogram.add_metric([channel, outcome], buckets, float(total_ms or 0) / 1000)
        yield histogram

        counter = CounterMetricFamily(
            "publisher_retries",
            "Retries: automatic (a retryable failure) or by an editor.",
            labels=["channel", "by"],
        )
        for channel, automatic, n in retries:
            counter.add_metric([channel, "automatic" if automatic else "editor"], n)
        yield counter

        yield from self._broker()

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("publisher_broker_up", "1 if Redis answered this scrape.")
        depth = GaugeMetricFamily(
            "publisher_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        try:
            depths = queue_depths(self.broker, self.runtime.settings)
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for queue, size in depths.items():
            depth.add_metric([queue], size)
        yield depth
