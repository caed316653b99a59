"""The store: the database is the source of truth for articles, deliveries,
attempts, notifications, feed documents and media.

All SQL lives in this package. May import `publisher.domain` and
`publisher.config`; nothing here knows channels, Celery or HTTP.
"""

from publisher.store.core import (
    Claim,
    Enqueue,
    NotificationClaim,
    PlannedDelivery,
    PlannedNotification,
    PublishResult,
    Store,
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
