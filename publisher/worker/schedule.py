"""The beat's own schedule for recurring jobs: how often the periodic tick runs."""

from __future__ import annotations

from typing import Any

from publisher.config.settings import Settings

TICK_SECONDS = 5.0


def tick_interval(settings: Settings) -> float | None:
    """Seconds between periodic ticks, or None when nothing is configured."""
    if not settings.ingest and not settings.syndication:
        return None
    shortest = min((feed.every for feed in settings.ingest.values()), default=TICK_SECONDS)
    return max(1.0, min(TICK_SECONDS, shortest))


def beat_entries(settings: Settings, queue: str) -> dict[str, dict[str, Any]]:
    interval = tick_interval(settings)
    if interval is None:
        return {}
    return {
        "periodic": {
            "task": "publisher.periodic",
            "schedule": interval,
            "options": {"queue": queue, "expires": interval * 5},
        }
    }
