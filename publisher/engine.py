"""One delivery attempt: claim, send, classify the outcome, record it.

This is the only code that turns a channel's result into a state change,
and it does so through the store's fenced writes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded

from channels.base import Channel, Receipt, SendAttempt
from publisher.dispatch import Dispatcher
from publisher.errors import (
    AuthExpiredError,
    ConfigError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RetryableError,
)
from publisher.notify import event_for, plan_notifications
from publisher.retry_policy import backoff_delay
from publisher.settings import Settings
from publisher.store import Claim, Enqueue, PlannedNotification, Store

log = logging.getLogger(__name__)


def idempotency_key(delivery_id: int, article_id: str, version: int) -> str:
    """Stable for every attempt at one version of one delivery, opaque to platforms."""
    raw = f"publisher:{delivery_id}:{article_id}:{version}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        channels: Mapping[str, Channel],
        dispatcher: Dispatcher,
    ) -> None:
        self.settings = settings
        self.store = store
        self.channels = channels
        self.dispatcher = dispatcher

    def deliver(self, delivery_id: int) -> str:
        """Make one attempt; returns what happened, for logs and tests."""
        claim = self.store.claim(delivery_id, self.settings.lease_seconds)
        if claim is None:
            return "skipped"  # settled, not due, or another worker holds it
        started = datetime.now(UTC)
        clock = time.monotonic()
        channel = self.channels.get(claim.channel)
        try:
            if channel is None:
                raise PermanentError(f"channel {claim.channel!r} is no longer configured")
            receipt = self._send(channel, claim)
        except DeliveryError as error:
            return self._failed(claim, error, started, clock)
        except SoftTimeLimitExceeded:
            timeout = OutcomeUnknownError("the attempt ran out of time")
            return self._failed(claim, timeout, started, clock)
        except ConfigError as error:
            return self._failed(claim, PermanentError(str(error)), started, clock)
        except Exception as error:  # a bug in a channel must not lose the delivery
            log.exception("delivery %s: unexpected error", delivery_id)
            wrapped = RetryableError(f"internal error: {type(error).__name__}")
            return self._failed(claim, wrapped, started, clock)
        recorded = self.store.record_delivered(
            claim,
            remote_id=receipt.remote_id,
            remote_url=receipt.remote_url,
            started_at=started,
            duration_ms=_elapsed_ms(clock),
        )
        if not recorded:
            log.warning("delivery %s: lease lost before recording delivered", delivery_id)
            return "lease-lost"
        if channel is not None and channel.is_feed:
            self.dispatcher.request_feed_rebuild(channel.name)
        return "delivered"

    def _send(self, channel: Channel, claim: Claim) -> Receipt:
        attempt = SendAttempt(
            delivery_id=claim.delivery_id,
            number=claim.attempt,
            idempotency_key=idempotency_key(
                claim.delivery_id, claim.article_id, claim.article_version
            ),
            checkpoint=claim.checkpoint,
            outcome_unknown=claim.outcome_unknown,
            save_checkpoint=lambda data: self._checkpoint(claim, data),
        )
        try:
            return channel.send(claim.payload, attempt)
        except AuthExpiredError:
            # Refresh once and go again at once: an expired token is not a
            # reason to wait. A second expiry is treated as transient.
            channel.refresh_auth()
            try:
                return channel.send(claim.payload, attempt)
            except AuthExpiredError as again:
                raise RetryableError(again.reason, code=again.code) from None

    def _checkpoint(self, claim: Claim, data: dict[str, object]) -> None:
        if not self.store.save_checkpoint(claim, dict(data)):
            raise PermanentError("lost the lease while sending; another worker took over")

    def _failed(self, claim: Claim, error: DeliveryError, started: datetime, clock: float) -> str:
        config = self.settings.channels.get(claim.channel)
        retryable = isinstance(error, RetryableError) and claim.attempt < claim.max_attempts
        retry_at: datetime | None = None
        reason = error.reason
        if retryable:
            assert isinstance(error, RetryableError)
            delay = backoff_delay(
                claim.attempt,
                base=config.backoff_base if config else 2.0,
                cap=config.backoff_cap if config else 900.0,
                retry_after=error.retry_after,
            )
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        elif isinstance(error, RetryableError):
            reason = f"gave up after {claim.attempt} attempts: {error.reason}"
        outcome = "retry" if retry_at else "failed"
        # Failed for good: the webhooks in [notifications] are told, in the same transaction.
        notifications = [] if retry_at else self._notifications(claim, error, reason)
        recorded = self.store.record_failure(
            claim,
            outcome=outcome,
            reason=reason,
            code=error.code,
            http_status=error.http_status,
            started_at=started,
            duration_ms=_elapsed_ms(clock),
            retry_at=retry_at,
            outcome_unknown=isinstance(error, OutcomeUnknownError),
            notifications=notifications,
        )
        if recorded is None:
            return "lease-lost"
        self.dispatcher.notify(recorded)
        if retry_at is not None:
            countdown = max(0.0, (retry_at - datetime.now(UTC)).total_seconds())
            self.dispatcher.enqueue([Enqueue(claim.delivery_id, claim.channel_type, countdown)])
        log.info(
            "delivery %s attempt %s: %s (%s)", claim.delivery_id, claim.attempt, outcome, reason
        )
        return outcome

    def _notifications(
        self, claim: Claim, error: DeliveryError, reason: str
    ) -> list[PlannedNotification]:
        return plan_notifications(
            self.settings,
            event=event_for(error),
            delivery_id=claim.delivery_id,
            article_id=claim.article_id,
            channel=claim.channel,
            reason=reason,
            code=error.code,
            attempts=claim.attempt,
            at=datetime.now(UTC),
        )


def _elapsed_ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)
