"""Every exception the product raises on purpose, in one hierarchy.

Callers branch on the class, never on the message: the engine decides
retry / refresh / fail from the type of a `DeliveryError`, the CLI and the
HTTP API turn an `InputError` into exit code 2 or a 4xx naming the field.
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base of everything raised on purpose by this product."""


class InputError(PublisherError):
    """Bad input from a user: names the field and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigError(PublisherError):
    """The settings or the matrix file are wrong; the process cannot start."""


class NotFound(PublisherError):
    """An article or delivery id that the store does not hold."""


class IllegalTransition(PublisherError):
    """A caller asked for a state move that `publisher.domain.states.TRANSITIONS`
    forbids: a bug in the caller, never a race (a lost race is a move that
    reports it did not happen). Nothing was written."""

    def __init__(self, source: str | None, target: str) -> None:
        where = "a new row" if source is None else f"{source}"
        super().__init__(f"illegal move: {where} → {target}")
        self.source = source
        self.target = target


class DeliveryError(PublisherError):
    """A send failed; the subclass says what the engine should do about it.

    `reason` is written for an editor and must never contain a secret.
    `code` is the platform's own error code when it gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str | int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = None if code is None else str(code)
        self.http_status = http_status


class RetryableError(DeliveryError):
    """Transient: network, timeout, 5xx, rate limit. Retry with backoff.

    `retry_after` (seconds) is the platform's own hint and is honoured as a
    lower bound on the next delay.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str | int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, code=code, http_status=http_status)
        self.retry_after = retry_after


class RateLimitedError(RetryableError):
    """The platform refused for the account's own rate limit (Weibo 10023/10024,
    HTTP 429, WeChat 45009): nothing was done. Not a failure of this delivery:
    the whole account is held until the platform's reset (`retry_after`) and
    the delivery waits first in line, without spending an attempt."""


class OutcomeUnknownError(RetryableError):
    """The request may have reached the platform (timeout after sending).

    The next attempt must reconcile (look the post up, or rely on the
    idempotency key) before sending again.
    """


class AuthExpiredError(DeliveryError):
    """The credential expired: refresh it and retry at once, without backoff."""


class PermanentError(DeliveryError):
    """Retrying cannot help (content rejected, bad credentials): fail now."""


class ReauthRequiredError(PermanentError):
    """The platform no longer accepts the account's credentials (revoked or
    expired token without a refresh, wrong app secret): only a person can fix
    it, so the failure is announced as a `reauth` notification, not `failed`."""
