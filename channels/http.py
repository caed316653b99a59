"""One way to call a platform over HTTP and classify what went wrong.

Transport failures are the same on every platform (connection refused,
timeouts, 5xx, 429 with Retry-After) and are classified here once. A
channel then reads the platform's own error codes from the JSON body and
maps them with `classify_code` and its table.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from publisher.domain.errors import (
    AuthExpiredError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from publisher.net.reading import MAX_ANSWER_BYTES, ReadFailed, TooLarge, TooSlow, read_capped
from publisher.net.redact import install_log_redaction

# urllib3 logs every request line at DEBUG, query string and all (WeChat's
# access_token rides in the URL): any process that sends through here redacts
# its log records, whether or not its entry point installed the redactor.
install_log_redaction()


@dataclass(frozen=True)
class CodeTable:
    """A platform's error codes by class. Unknown codes are permanent: a code
    nobody anticipated should stop and be read by a person, not loop."""

    retryable: frozenset[str] = frozenset()
    #: The account's rate limit is spent: a hold on the account, not a retry.
    rate_limited: frozenset[str] = frozenset()
    auth_expired: frozenset[str] = frozenset()
    success: frozenset[str] = frozenset()
    retry_after: Mapping[str, float] | None = None  # per-code minimum wait

    @classmethod
    def of(cls, **groups: Any) -> CodeTable:
        built: dict[str, Any] = {}
        for key, values in groups.items():
            built[key] = dict(values) if key == "retry_after" else frozenset(str(v) for v in values)
        return cls(**built)


def classify_code(
    table: CodeTable, code: str | int, message: str, *, http_status: int | None = None
) -> DeliveryError:
    """The classified error for a platform error code (callers check `success` first)."""
    key = str(code)
    reason = f"{message} (code {key})"
    if key in table.auth_expired:
        return AuthExpiredError(reason, code=key, http_status=http_status)
    if key in table.retryable or key in table.rate_limited:
        wait = (table.retry_after or {}).get(key)
        kind = RateLimitedError if key in table.rate_limited else RetryableError
        return kind(reason, code=key, http_status=http_status, retry_after=wait)
    return PermanentError(reason, code=key, http_status=http_status)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


class PlatformSession(requests.Session):
    """A session for one platform's hosts, kept alive between posts.

    requests reads the environment's proxy and CA settings (`HTTPS_PROXY`,
    `NO_PROXY`, `REQUESTS_CA_BUNDLE`, ...) again on every request, scanning
    `os.environ` twice: a third of a fast post's CPU. They do not change
    while a process runs, so this reads them once per origin and keeps them
    for the session's life (a channel renews its session after an idle spell).
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], Any] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies or not isinstance(url, str):  # a request's own proxies: as requests does
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        merged = self._environment.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = merged
        return {**merged, "proxies": dict(merged["proxies"] or {})}


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    what: str,
    **kwargs: Any,
) -> requests.Response:
    """Send one request; raise a classified error for transport-level failures.

    Returns the response for any status below 500 except 429, because
    platforms put their own error codes in 4xx bodies. `what` names the step
    for the editor ("upload cover", "create draft"); URLs are never put in
    reasons because some platforms carry credentials in the query string.
    """
    streamed = bool(kwargs.pop("stream", False))
    deadline = time.monotonic() + timeout
    try:
        response = session.request(method, url, timeout=timeout, stream=True, **kwargs)
    except requests.ConnectTimeout:
        raise RetryableError(f"{what}: could not connect (timeout)") from None
    except requests.ConnectionError as exc:
        if _request_was_sent(exc):
            raise OutcomeUnknownError(f"{what}: connection dropped after sending") from None
        raise RetryableError(f"{what}: could not connect") from None
    except requests.Timeout:
        raise OutcomeUnknownError(f"{what}: no answer within {timeout:g}s") from None
    except requests.RequestException as exc:
        raise RetryableError(f"{what}: {type(exc).__name__}") from None
    if response.status_code == 429:
        raise RateLimitedError(
            f"{what}: rate limited by the platform",
            http_status=429,
            retry_after=retry_after_seconds(response.headers),
        )
    if response.status_code >= 500:
        raise RetryableError(
            f"{what}: platform error HTTP {response.status_code}",
            http_status=response.status_code,
            retry_after=retry_after_seconds(response.headers),
        )
    if not streamed:
        _read_answer(response, what, timeout, deadline)
    return response


def _read_answer(response: requests.Response, what: str, timeout: float, deadline: float) -> None:
    """Read the answer now, up to `MAX_ANSWER_BYTES` and by the deadline: an endless
    or dribbling body must not hold a worker or its memory. The request has been
    sent, so a body not read whole leaves the outcome unknown (reconcile first)."""
    try:
        body = read_capped(response, max_bytes=MAX_ANSWER_BYTES, deadline=deadline)
    except TooLarge:
        raise OutcomeUnknownError(
            f"{what}: the answer is larger than {MAX_ANSWER_BYTES:,} bytes",
            http_status=response.status_code,
        ) from None
    except TooSlow:
        raise OutcomeUnknownError(f"{what}: the answer was not read within {timeout:g}s") from None
    except ReadFailed:
        raise OutcomeUnknownError(f"{what}: connection dropped while reading the answer") from None
    response._content = body  # what `.content`, `.text` and `.json()` read


def json_body(response: requests.Response, what: str) -> dict[str, Any]:
    """The JSON object in a response, or a retryable error (a proxy's HTML page)."""
    try:
        data = response.json()
    except ValueError:
        raise RetryableError(
            f"{what}: HTTP {response.status_code} without a JSON body",
            http_status=response.status_code,
        ) from None
    if not isinstance(data, dict):
        raise RetryableError(f"{what}: unexpected JSON shape", http_status=response.status_code)
    return data


def _request_was_sent(exc: requests.ConnectionError) -> bool:
    """A reset or remote close after the request went out leaves the outcome unknown."""
    text = repr(exc)
    return any(s in text for s in ("RemoteDisconnected", "Connection aborted", "reset by peer"))
