"""One attempt runner for everything that is sent: deliveries and notifications.

Both make one attempt under a lease and must turn whatever the attempt
raised into a classified `DeliveryError` (the exception ladder), then decide
whether to try again and when (the retry decision). Each is written once,
here, so a delivery and a notification can never disagree about what a
timeout or an internal error means, or about how long to wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from celery.exceptions import SoftTimeLimitExceeded

from publisher.delivery.retry_policy import backoff_delay
from publisher.domain.errors import (
    ConfigError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RetryableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class Backoff(Protocol):
    """Where the backoff comes from: a channel's or a notification target's table."""

    @property
    def backoff_base(self) -> float: ...
    @property
    def backoff_cap(self) -> float: ...


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one attempt came to: a result, or the classified error it raised."""

    result: T | None
    error: DeliveryError | None
    started_at: datetime
    duration_ms: int


def attempt(work: Callable[[], T], *, what: str) -> Outcome[T]:
    """Run one attempt and classify whatever it raised (the exception ladder).

    - a `DeliveryError` is already classified;
    - running out of the task's time may have left the request at the remote:
      the outcome is unknown, so the next attempt reconciles first;
    - a configuration problem (an empty secret variable) needs a person;
    - anything else is a bug in our code: it must not lose the work, so it is
      retried, logged with its traceback, and shown without internals.
    """
    started = datetime.now(UTC)
    clock = time.monotonic()
    error: DeliveryError
    try:
        result = work()
    except DeliveryError as exc:
        error = exc
    except SoftTimeLimitExceeded:
        error = OutcomeUnknownError("the attempt ran out of time")
    except ConfigError as exc:
        error = PermanentError(str(exc))
    except Exception as exc:
        log.exception("%s: unexpected error", what)
        error = RetryableError(f"internal error: {type(exc).__name__}")
    else:
        return Outcome(result, None, started, _elapsed_ms(clock))
    return Outcome(None, error, started, _elapsed_ms(clock))


@dataclass(frozen=True)
class Verdict:
    """The retry decision: `retry_at` None means failed for good, with `reason`."""

    retry_at: datetime | None
    reason: str

    @property
    def outcome(self) -> str:
        return "retry" if self.retry_at is not None else "failed"

    def countdown(self) -> float:
        """Seconds until the retry is due, for the broker's countdown."""
        if self.retry_at is None:
            return 0.0
        return max(0.0, (self.retry_at - datetime.now(UTC)).total_seconds())


def decide(
    error: DeliveryError,
    *,
    attempt_number: int,
    max_attempts: int,
    backoff: Backoff | None,
    now: datetime | None = None,
) -> Verdict:
    """Retry a transient error while attempts remain, after an exponential,
    jittered, capped backoff that the platform's Retry-After floors; fail
    anything else, and say so when it was the attempts that ran out.

    `backoff` None: the channel or target is no longer configured, so there
    is nothing to retry against.
    """
    if not isinstance(error, RetryableError):
        return Verdict(None, error.reason)
    if backoff is None or attempt_number >= max_attempts:
        return Verdict(None, f"gave up after {attempt_number} attempts: {error.reason}")
    delay = backoff_delay(
        attempt_number,
        base=backoff.backoff_base,
        cap=backoff.backoff_cap,
        retry_after=error.retry_after,
    )
    return Verdict((now or datetime.now(UTC)) + timedelta(seconds=delay), error.reason)


def _elapsed_ms(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)
