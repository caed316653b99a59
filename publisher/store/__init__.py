"""The store: the database is the source of truth for articles, deliveries,
attempts, notifications, feed documents and media.

All SQL lives in this package. May import `publisher.domain` and
`publisher.config`; nothing here knows channels, Celery or HTTP.

`Store` (core) is composed of one mixin per side, each in its own module:

- publishing: articles, versions, one delivery per channel, corrections;
- leases: the worker's claim, checkpoints, outcomes, deferral (fenced);
- sweeper: due schedules, lost messages, stale feeds;
- notifications: the failure notifications' own small ledger;
- editors: retry, cancel, retract;
- approval: an editor approves or rejects a writer's version;
- documents: feed documents and media;
- reads, metrics: what the API, dashboard, CLI and /metrics show;
- ingest, syndication: the recurring jobs' ledgers.

Every state change goes through `transitions.move`, a compare-and-set
against `publisher.domain.states.TRANSITIONS`.
"""

from publisher.store.core import Store
from publisher.store.records import (
    Claim,
    Enqueue,
    NotificationClaim,
    PlannedDelivery,
    PlannedNotification,
    PublishResult,
    utcnow,
)

__all__ = [
    "Claim",
    "Enqueue",
    "NotificationClaim",
    "PlannedDelivery",
    "PlannedNotification",
    "PublishResult",
    "Store",
    "utcnow",
]
