"""A JSON webhook: POST the article to any HTTP endpoint the newsroom runs.

For systems that are not a platform of their own (an archive, a chat
room bridge, a partner's ingest API). The receiver gets an
`Idempotency-Key` header that is the same for every attempt, so it can
drop a repeat after an ambiguous timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import requests

from channels.base import Channel, Correction, Receipt, SendAttempt
from channels.http import PlatformSession, json_body, request
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError, PermanentError

#: A kept connection idle longer than this is not reused: a receiver may have
#: closed it meanwhile (uvicorn does after 5 s), and a POST that meets the close
#: would leave its outcome unknown. Under load posts follow each other closely.
REUSE_WITHIN_SECONDS = 2.0


class WebhookChannel(Channel):
    type_name: ClassVar[str] = "webhook"
    correction: ClassVar[Correction] = Correction.EDIT
    _local: threading.local | None = None

    def format(self, article: Article) -> dict[str, Any]:
        data = article.to_json()
        data.pop("channels", None)
        data["content_hash"] = article.content_hash()
        return data

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        return self._post(post, attempt.idempotency_key)

    def update(
        self, remote_id: str, post: dict[str, Any], attempt: SendAttempt | None = None
    ) -> Receipt:
        """A correction is the new version posted again; its key is its content."""
        return self._post(post, post["content_hash"][:32])

    def _post(self, post: dict[str, Any], key: str) -> Receipt:
        if not self.config.base_url:
            raise ConfigError(f"channels.{self.name}.base_url is required for a webhook")
        headers = {"Idempotency-Key": key}
        if self.config.option("token_env"):
            headers["Authorization"] = f"Bearer {self.config.secret('token')}"
        response = request(
            self._session(), "POST", self.config.base_url, json=post, headers=headers,
            timeout=self.config.timeout, what="webhook",
        )  # fmt: skip
        if response.status_code in (401, 403):
            raise PermanentError(
                f"webhook refused the credentials (HTTP {response.status_code})",
                http_status=response.status_code,
            )
        if response.status_code >= 400:
            raise PermanentError(
                f"webhook rejected the article (HTTP {response.status_code})",
                http_status=response.status_code,
            )
        body = json_body(response, "webhook") if response.content else {}
        return Receipt(
            remote_id=str(body.get("id") or key),
            remote_url=body.get("url"),
        )

    def _session(self) -> requests.Session:
        """One kept-alive connection per thread, while posts follow each other
        (a new TCP connection and Session per post cost more than the post)."""
        if self._local is None:
            self._local = threading.local()
        local, now = self._local, time.monotonic()
        session: requests.Session | None = getattr(local, "session", None)
        if session is not None and now - local.used > REUSE_WITHIN_SECONDS:
            session.close()
            session = None
        if session is None:
            session = local.session = PlatformSession()
        local.used = now
        return session
