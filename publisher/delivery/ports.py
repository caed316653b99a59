"""What the delivery layer needs from the broker, as a port.

The engine and the notifier hand work back to the queue (a retry after its
backoff, a notification, a feed rebuild). The worker layer implements this
with Celery (`publisher.worker.dispatch.Dispatcher`); the delivery layer
never imports Celery's wiring, so it can be tested and reasoned about alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from publisher.store import Enqueue


class Dispatch(Protocol):
    def enqueue(self, items: Iterable[Enqueue]) -> int:
        """Queue deliveries; returns how many reached the broker."""
        ...

    def notify(self, notification_ids: Iterable[int], countdown: float = 0.0) -> int:
        """Queue failure notifications; returns how many reached the broker."""
        ...

    def request_feed_rebuilds(self, channels: list[str]) -> list[str]:
        """Make sure one rebuild of each feed channel is pending."""
        ...
