"""One delivery attempt: claim, send, classify the outcome, record it.

This is the only code that turns a channel's result into a state change,
and it does so through the store's fenced writes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from channels.base import Channel, Receipt, SendAttempt, notes_of, remote_posts
from publisher.config.settings import Settings
from publisher.delivery.attempts import Outcome, Verdict, attempt, decide
from publisher.delivery.notify import event_for, plan_notifications
from publisher.delivery.pacing import COUNTDOWN_LIMIT, Deferral, Pacer, Slot
from publisher.delivery.ports import Dispatch
from publisher.domain.errors import (
    AuthExpiredError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from publisher.domain.states import Correction, Kind, State
from publisher.store import Claim, Enqueue, PlannedNotification, Store
from publisher.store.models import DeliveryRow
from publisher.store.outcomes import Delivered, Outcomes

log = logging.getLogger(__name__)

#: The width of the store's `remote_id` column (PostgreSQL enforces it).
REMOTE_ID_WIDTH: int = getattr(DeliveryRow.__table__.c.remote_id.type, "length", None) or 256


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
        dispatcher: Dispatch,
    ) -> None:
        self.settings = settings
        self.store = store
        self.channels = channels
        self.dispatcher = dispatcher
        self.pacer = Pacer(settings)

    def deliver(self, delivery_id: int) -> str:
        """Make one attempt; returns what happened, for logs and tests."""
        claim = self.store.claim(delivery_id, self.settings.lease_seconds)
        if claim is None:
            return "skipped"  # settled, not due, or another worker holds it
        return self.settle([self.attempt(claim)])[0]

    def attempt(self, claim: Claim) -> Tried:
        """Send one claimed delivery (or find it must wait) and decide what to
        record; nothing is written yet (`settle` does, for one or a batch)."""
        if claim.attempt > 2 * claim.max_attempts:
            # Only taking over from workers that died mid-attempt counts past the
            # limit (a worker lost to a deploy or a crash is not the delivery's
            # fault, so it gets as many again), but an article that kills its
            # worker every time must not be claimed forever.
            lost = PermanentError(
                f"gave up after {claim.attempt - 1} attempts: its worker stopped before it "
                "could record the outcome; check the platform before retrying"
            )
            return self._failure(claim, Outcome(None, lost, datetime.now(UTC), 0))
        channel = self.channels.get(claim.channel)
        slots: list[Slot] = []

        def work() -> Receipt | Deferral:
            if channel is None:
                raise PermanentError(f"channel {claim.channel!r} is no longer configured")
            # Quiet hours and the account's slots hold the delivery before anything is sent.
            paced = self.pacer.deferral(claim, channel)
            if isinstance(paced, Deferral):
                return paced
            if paced is not None:
                slots.append(paced)
            return self._send(channel, claim)

        outcome = attempt(work, what=f"delivery {claim.delivery_id}")
        if isinstance(outcome.error, RateLimitedError) and channel is not None:
            # The platform's own limit is the account's, not this delivery's failure.
            return Tried(claim, held=self.pacer.refused(claim, channel, outcome.error))
        if outcome.error is not None:
            return self._failure(claim, outcome)
        if isinstance(outcome.result, Deferral):
            return Tried(claim, held=outcome.result)
        assert isinstance(outcome.result, Receipt)
        # A spaced post started in its slot: the log shows the start the promise is about.
        started = slots[0].started if slots else outcome.started_at
        feed = channel.name if channel is not None and channel.is_feed else None
        return Tried(claim, receipt=outcome.result, outcome=outcome, started=started, feed=feed)

    def settle(self, tried: Sequence[Tried], give_back: Sequence[Claim] = ()) -> list[str]:
        """Record attempts' outcomes in one transaction, then tell the broker what
        follows from them (retries, releases, notifications, feed rebuilds) in one
        hand-over. Returns each attempt's result, in order. `give_back`: claims
        not tried (a drain's time ran out), due again with their attempt unspent."""
        after = _After()
        with self.store.outcomes() as writes:
            posted = [one for one in tried if one.receipt is not None]
            recorded = writes.delivered_all([_receipt_of(one) for one in posted])  # at once
            written = {one.claim.delivery_id: ok for one, ok in zip(posted, recorded, strict=True)}
            results = [self._record(writes, one, written, after) for one in tried]
            writes.release(give_back)
        after.send(self.dispatcher)
        return results

    def _record(
        self, writes: Outcomes, tried: Tried, delivered: Mapping[int, bool], after: _After
    ) -> str:
        """One attempt's outcome; `delivered`: whether each receipt was written."""
        claim = tried.claim
        if tried.held is not None:
            return self._hold(writes, claim, tried.held, after)
        if tried.verdict is not None:
            return self._failed(writes, tried, after)
        if not delivered[claim.delivery_id]:
            log.warning("delivery %s: lease lost before recording delivered", claim.delivery_id)
            return "lease-lost"
        if tried.feed is not None:
            after.rebuild.append(tried.feed)
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
            return self._perform(channel, claim, attempt)
        except AuthExpiredError:
            # Refresh once and go again at once: an expired token is not a
            # reason to wait. A second expiry is treated as transient.
            channel.refresh_auth()
            try:
                return self._perform(channel, claim, attempt)
            except AuthExpiredError as again:
                raise RetryableError(again.reason, code=again.code) from None

    def _perform(self, channel: Channel, claim: Claim, attempt: SendAttempt) -> Receipt:
        if claim.kind == Kind.RETRACT:
            return self._remove(channel, claim, attempt)
        if claim.kind == Kind.CORRECTION:
            return self._correct(channel, claim, attempt)
        if claim.remote_id and channel.correction == Correction.EDIT:
            return channel.update(claim.remote_id, claim.payload, attempt)  # delivered: edit it
        return channel.send(claim.payload, attempt)

    def _correct(self, channel: Channel, claim: Claim, attempt: SendAttempt) -> Receipt:
        rows = self.store.siblings(claim.article_id, claim.channel)
        original = rows.get(Kind.PUBLISH)
        if original is None or original.state in (State.FAILED, State.CANCELLED):
            raise PermanentError("the original post was never delivered; retry it instead")
        if original.state != State.DELIVERED:
            raise RetryableError("waiting for the original post to be delivered", retry_after=5)
        if channel.correction == Correction.FOLLOW_UP:
            return channel.send_correction(claim.payload, original.remote_url, attempt)
        # REPUBLISH: the corrected article takes the place of what followers see now.
        replaced = claim.remote_id or original.remote_id
        if replaced and attempt.checkpoint.get("replaced") != replaced:
            channel.delete(replaced)
            attempt.step("replaced", replaced)
        return channel.send(claim.payload, attempt)

    def _remove(self, channel: Channel, claim: Claim, attempt: SendAttempt) -> Receipt:
        """Delete every post of the article on this channel, each once (checkpointed)."""
        rows = self.store.siblings(claim.article_id, claim.channel)
        posts = [rows.get(Kind.PUBLISH), rows.get(Kind.CORRECTION)]
        if any(row is not None and row.state == State.SENDING for row in posts):
            raise RetryableError("waiting for the post in flight to land", retry_after=5)
        removed: list[str] = list(attempt.checkpoint.get("removed", []))
        for target in _live_posts(channel, rows):
            if target not in removed:
                channel.delete(target)
                removed.append(target)
                attempt.step("removed", removed)
        return Receipt(remote_id=_named(removed), remote_url=None)

    def _hold(self, writes: Outcomes, claim: Claim, deferral: Deferral, after: _After) -> str:
        """Wait for the slot without spending an attempt; a countdown or the sweeper ends it."""
        armed = (deferral.until - datetime.now(UTC)).total_seconds() <= COUNTDOWN_LIMIT
        if not writes.hold(claim, until=deferral.until, reason=deferral.reason, armed=armed):
            return "lease-lost"
        if armed:  # a longer wait is released by the sweeper once due
            countdown = max(0.0, (deferral.until - datetime.now(UTC)).total_seconds())
            after.enqueue.append(Enqueue(claim.delivery_id, claim.channel_type, countdown))
        log.info("delivery %s: %s", claim.delivery_id, deferral.reason)
        return "held"

    def _checkpoint(self, claim: Claim, data: dict[str, object]) -> None:
        if not self.store.save_checkpoint(claim, dict(data)):
            raise PermanentError("lost the lease while sending; another worker took over")

    def _failure(self, claim: Claim, outcome: Outcome[Any]) -> Tried:
        """The retry decision on a failed attempt, and the notices a failure for good sends."""
        error = outcome.error
        assert error is not None
        verdict = decide(
            error,
            attempt_number=claim.attempt,
            max_attempts=claim.max_attempts,
            backoff=self.settings.channels.get(claim.channel),
        )
        # Failed for good: the webhooks in [notifications] are told, in the same transaction.
        notices = [] if verdict.retry_at else self._notifications(claim, error, verdict.reason)
        return Tried(claim, outcome=outcome, verdict=verdict, notices=notices)

    def _failed(self, writes: Outcomes, tried: Tried, after: _After) -> str:
        claim, verdict, outcome = tried.claim, tried.verdict, tried.outcome
        assert verdict is not None and outcome is not None and outcome.error is not None
        error = outcome.error
        recorded = writes.failure(
            claim,
            outcome=verdict.outcome,
            reason=verdict.reason,
            code=error.code,
            http_status=error.http_status,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            retry_at=verdict.retry_at,
            outcome_unknown=isinstance(error, OutcomeUnknownError),
            notifications=tried.notices,
        )
        if recorded is None:
            return "lease-lost"
        after.notify.extend(recorded)
        if verdict.retry_at is not None:
            retry = Enqueue(claim.delivery_id, claim.channel_type, verdict.countdown())
            after.enqueue.append(retry)
        log.info(
            "delivery %s attempt %s: %s (%s)",
            claim.delivery_id, claim.attempt, verdict.outcome, verdict.reason,
        )  # fmt: skip
        return verdict.outcome

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


@dataclass(frozen=True)
class Tried:
    """One attempt, decided but not yet recorded: exactly one of `receipt`
    (delivered), `held` (wait for the slot, no attempt spent) or `verdict`
    (failed: retry or for good)."""

    claim: Claim
    receipt: Receipt | None = None
    held: Deferral | None = None
    outcome: Outcome[Any] | None = None
    started: datetime | None = None
    feed: str | None = None  # a feed channel whose documents must be rebuilt
    verdict: Verdict | None = None
    notices: list[PlannedNotification] = field(default_factory=list)


def _receipt_of(tried: Tried) -> Delivered:
    assert tried.receipt is not None and tried.outcome is not None
    return Delivered(
        tried.claim,
        remote_id=tried.receipt.remote_id,
        remote_url=tried.receipt.remote_url,
        started_at=tried.started or tried.outcome.started_at,
        duration_ms=tried.outcome.duration_ms,
        notes=tuple(notes_of(tried.claim.checkpoint)),  # what the channel did differently
    )


@dataclass
class _After:
    """What the broker is told once outcomes are committed, gathered for one hand-over."""

    enqueue: list[Enqueue] = field(default_factory=list)
    notify: list[int] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)

    def send(self, dispatcher: Dispatch) -> None:
        if self.notify:
            dispatcher.notify(self.notify)
        if self.enqueue:
            dispatcher.enqueue(self.enqueue)
        if self.rebuild:
            dispatcher.request_feed_rebuilds(sorted(set(self.rebuild)))


def _named(removed: list[str]) -> str:
    """The removed posts as the removal's receipt names them: every id while they
    fit the store's `remote_id` column, else the count, the first and the last."""
    listed = ",".join(removed) or "-"
    if len(listed) <= REMOTE_ID_WIDTH:
        return listed
    return f"{len(removed)} posts: {removed[0][:100]} … {removed[-1][:100]}"


def _live_posts(channel: Channel, rows: Mapping[str, DeliveryRow]) -> list[str]:
    """What followers can still see: the delivered post (every part of a thread,
    the last first, also of one that never finished), the follow-up correction,
    or, where a correction republished the article, only the republished one."""
    publish, correction = rows.get(Kind.PUBLISH), rows.get(Kind.CORRECTION)
    posts: list[str] = []
    if channel.correction == Correction.REPUBLISH and correction is not None:
        if correction.remote_id and correction.state == State.DELIVERED:
            return [correction.remote_id]
        replaced = (correction.checkpoint or {}).get("replaced")
        if replaced and publish is not None and replaced == publish.remote_id:
            return [correction.remote_id] if correction.remote_id else []
    if publish is not None:
        # A thread that never finished still has the parts it posted (its checkpoint's).
        delivered = publish.remote_id if publish.state == State.DELIVERED else None
        posts.extend(reversed(remote_posts(publish.checkpoint, delivered)))
    if correction is not None and correction.remote_id and correction.state == State.DELIVERED:
        posts.append(correction.remote_id)
    return posts
