"""What crosses the store's boundary: plans in, claims and queue entries out.

Plain frozen dataclasses, so a caller holds no session and no ORM row that
could be written back by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from publisher.domain.states import Correction, Kind


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlannedDelivery:
    """What publishing wants for one channel: its payload, formatted once."""

    channel: str
    channel_type: str
    max_attempts: int
    payload: dict[str, Any]
    correction: Correction = Correction.EDIT
    #: The follow-up post (FOLLOW_UP) or the corrected article (REPUBLISH).
    correction_payload: dict[str, Any] | None = None
    can_delete: bool = True


@dataclass(frozen=True)
class Claim:
    """A delivery a worker holds under a lease, with what it needs to send it."""

    delivery_id: int
    token: str
    channel: str
    channel_type: str
    article_id: str
    article_version: int
    attempt: int
    max_attempts: int
    payload: dict[str, Any]
    checkpoint: dict[str, Any]
    outcome_unknown: bool
    kind: str = Kind.PUBLISH
    remote_id: str | None = None  # set when this row was delivered before (an update)


@dataclass(frozen=True)
class Enqueue:
    """A delivery to hand to the broker, on its channel type's queue."""

    delivery_id: int
    channel_type: str
    countdown: float = 0.0


@dataclass(frozen=True)
class PlannedNotification:
    """A failure notification to write with the failure: its target and exact body."""

    target: str
    event: str
    body: str
    max_attempts: int


@dataclass(frozen=True)
class NotificationClaim:
    """A notification a worker holds under a lease, with what it needs to send it."""

    notification_id: int
    token: str
    delivery_id: int
    target: str
    event: str
    body: str
    attempt: int
    max_attempts: int


@dataclass
class PublishResult:
    article_id: str
    version: int
    created: bool
    changed: bool
    to_enqueue: list[Enqueue] = field(default_factory=list)
    #: Same content with another `publish_at`: deliveries still waiting were moved.
    rescheduled: bool = False
