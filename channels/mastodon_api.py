"""Talking to a Mastodon instance: the session, the token and the error mapping.

Kept apart from the channel so the single status and the thread
(`channels.mastodon_thread`) share one conversation with the server and
one reading of its answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from channels.base import Receipt
from channels.http import PlatformSession, json_body, request
from publisher.domain.errors import DeliveryError, PermanentError, ReauthRequiredError


def seconds_until_reset(value: str | None, now: float) -> float | None:
    """Seconds until `X-RateLimit-Reset`: ISO 8601 on Mastodon, epoch or delta seconds elsewhere."""
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return max(0.0, moment.timestamp() - now)
    # A number this large is a Unix time (mastodon-mock, GitHub); smaller is a delay.
    return max(0.0, number - now) if number > 1e9 else max(0.0, number)


def add_retry_after_from_reset(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: give Mastodon's 429 the Retry-After it lacks.

    Mastodon answers 429 with `X-RateLimit-Reset` and no `Retry-After`;
    writing the wait into `Retry-After` lets `channels.http.request`
    classify it exactly as it does every other platform's rate limit.
    """
    if response.status_code != 429 or response.headers.get("Retry-After"):
        return
    wait = seconds_until_reset(response.headers.get("X-RateLimit-Reset"), time.time())
    if wait is not None:
        response.headers["Retry-After"] = str(math.ceil(wait))


class MastodonApi:
    """One authenticated conversation with an instance: session, token and error mapping.

    Any non-2xx answer that `channels.http.request` did not already classify
    (it handles 429, 5xx and transport failures) is permanent here: 401, 403,
    404 and 422 mean the token, the permission, the status or the content is
    wrong, and repeating the request cannot change that.
    """

    def __init__(self, base_url: str, token: str, token_env: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._token_env = token_env
        self.session = PlatformSession()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.hooks["response"].append(add_retry_after_from_reset)

    def close(self) -> None:
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        tolerate: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> requests.Response:
        """The response to one request, if 2xx or in `tolerate`; else a classified error.

        Redirects are not followed: requests would turn a redirected POST
        into a GET, so a moved instance must fail visibly (fix `base_url`).
        """
        # `request` never puts URLs or headers in a reason, so the token stays out.
        response = request(
            self.session,
            method,
            self.base_url + path,
            timeout=self.timeout,
            what=what,
            allow_redirects=False,
            **kwargs,
        )
        if 200 <= response.status_code < 300 or response.status_code in tolerate:
            return response
        raise self._rejection(response, what)

    def json(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        return json_body(self.call(method, path, what=what, **kwargs), what)

    def _rejection(self, response: requests.Response, what: str) -> DeliveryError:
        status = response.status_code
        error = self._scrub(_error_text(response))
        said = f"{error} (HTTP {status})" if error else f"HTTP {status}"
        if status == 401:
            # Mastodon tokens never expire and cannot be refreshed: it was revoked.
            return ReauthRequiredError(
                f"{what}: the access token was rejected ({said}); re-authorise the "
                f"account and put the new token in {self._token_env}",
                http_status=status,
            )
        return PermanentError(f"{what}: {said}", http_status=status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


def _error_text(response: requests.Response) -> str:
    """The server's own `error` (and `error_description`), or "" (a proxy's page)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        description = data.get("error_description")
        if isinstance(description, str) and description:
            return f"{data['error']}: {description}"
        return str(data["error"])
    return ""


def status_path(remote_id: str) -> str:
    return f"/api/v1/statuses/{quote(str(remote_id), safe='')}"


def receipt(data: Mapping[str, Any], what: str) -> Receipt:
    if data.get("id") is None:
        raise PermanentError(f"{what}: the answer has no status id")
    url = data.get("url") or data.get("uri")
    return Receipt(remote_id=str(data["id"]), remote_url=str(url) if url else None)
