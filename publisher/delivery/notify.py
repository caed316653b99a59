"""Failure notifications: signed webhooks told when a delivery fails for good.

Each `[notifications.NAME]` target hears of the events it subscribes to:
`failed` (a delivery gave up, or was rejected for good) and `reauth` (the
channel raised `ReauthRequiredError`: only a person can fix the account's
credentials). A failure is one event, never both.

A notification is written in the same transaction as the failure it
reports (`Store.record_failure`), then sent by the `publisher.notify` task
on the control queue under the same rules as a delivery: a compare-and-set
claim with a lease, retries with `backoff_delay`, and the sweeper to
re-enqueue one whose message was lost. Receivers get:

    POST <url>
    Content-Type: application/json
    X-Publisher-Event: failed | reauth
    X-Publisher-Delivery: <notification id, the same on every attempt: de-duplicate on it>
    X-Publisher-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>

    {"event", "delivery_id", "article_id", "channel", "reason", "code", "attempts", "at"}

Neither the key nor the URL (which may carry a token of its own) is ever
put in a reason or a log line: a target is named by its table name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

import requests

from channels.http import request
from publisher.config.settings import NotificationConfig, Settings
from publisher.delivery.attempts import attempt, decide
from publisher.delivery.ports import Dispatch
from publisher.domain.errors import (
    DeliveryError,
    PermanentError,
    ReauthRequiredError,
)
from publisher.store import NotificationClaim, PlannedNotification, Store

log = logging.getLogger(__name__)

FAILED = "failed"
REAUTH = "reauth"
EVENT_HEADER = "X-Publisher-Event"
SIGNATURE_HEADER = "X-Publisher-Signature"
ID_HEADER = "X-Publisher-Delivery"


def event_for(error: DeliveryError) -> str:
    """The event a final failure is announced as."""
    return REAUTH if isinstance(error, ReauthRequiredError) else FAILED


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Publisher-Signature` value for `body`: `sha256=<hex HMAC-SHA256>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute over the raw body, compare in constant time."""
    return hmac.compare_digest(sign(secret, body), signature)


def plan_notifications(
    settings: Settings,
    *,
    event: str,
    delivery_id: int,
    article_id: str,
    channel: str,
    reason: str,
    code: str | None,
    attempts: int,
    at: datetime,
) -> list[PlannedNotification]:
    """One notification per target that wants this event on this channel.

    The body is serialised once here and stored, so every attempt sends
    (and signs) the same bytes.
    """
    targets = [t for t in settings.notifications.values() if t.wants(event, channel)]
    if not targets:
        return []
    body = json.dumps(
        {
            "event": event,
            "delivery_id": delivery_id,
            "article_id": article_id,
            "channel": channel,
            "reason": reason,
            "code": code,
            "attempts": attempts,
            "at": at.astimezone(UTC).isoformat(timespec="milliseconds"),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return [PlannedNotification(t.name, event, body, t.max_attempts) for t in targets]


class Notifier:
    """Sends one notification attempt and records its outcome, like `DeliveryEngine`."""

    def __init__(self, settings: Settings, store: Store, dispatcher: Dispatch) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher

    def send(self, notification_id: int) -> str:
        """Make one attempt; returns what happened, for logs and tests."""
        claim = self.store.claim_notification(notification_id, self.settings.lease_seconds)
        if claim is None:
            return "skipped"  # settled, not due, or another worker holds it
        target = self.settings.notifications.get(claim.target)

        def work() -> int:
            if target is None:
                raise PermanentError(f"notification target {claim.target!r} is not configured")
            return self._post(target, claim)

        outcome = attempt(work, what=f"notification {notification_id}")
        if outcome.error is not None:
            return self._failed(claim, target, outcome.error)
        status = int(outcome.result or 0)
        if not self.store.record_notification(claim, http_status=status):
            return "lease-lost"
        log.info(
            "notification %s (%s, %s) delivered on attempt %s",
            claim.notification_id, claim.event, claim.target, claim.attempt,
        )  # fmt: skip
        return "delivered"

    def _post(self, target: NotificationConfig, claim: NotificationClaim) -> int:
        body = claim.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "publisher-notify",
            EVENT_HEADER: claim.event,
            ID_HEADER: str(claim.notification_id),
            SIGNATURE_HEADER: sign(target.secret(), body),
        }
        what = f"notify {target.name}"
        with requests.Session() as session:
            # 429, 5xx and transport failures come back as RetryableError.
            # A redirect is not followed: it would turn the POST into a GET.
            response = request(
                session, "POST", target.url, data=body, headers=headers,
                timeout=target.timeout, what=what, allow_redirects=False,
            )  # fmt: skip
        status = response.status_code
        if status >= 300:
            raise PermanentError(f"{what}: the endpoint answered HTTP {status}", http_status=status)
        return status

    def _failed(
        self, claim: NotificationClaim, target: NotificationConfig | None, error: DeliveryError
    ) -> str:
        verdict = decide(
            error,
            attempt_number=claim.attempt,
            max_attempts=claim.max_attempts,
            backoff=target,
        )
        retry_at, reason = verdict.retry_at, verdict.reason
        recorded = self.store.record_notification(
            claim, http_status=error.http_status, error=reason, retry_at=retry_at
        )
        if not recorded:
            return "lease-lost"
        if retry_at is not None:
            self.dispatcher.notify([claim.notification_id], countdown=verdict.countdown())
        outcome = verdict.outcome
        log.warning(
            "notification %s (%s, %s) attempt %s: %s (%s)",
            claim.notification_id, claim.event, claim.target, claim.attempt, outcome, reason,
        )  # fmt: skip
        return outcome
