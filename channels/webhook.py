"""A JSON webhook: POST the article to any HTTP endpoint the newsroom runs.

For systems that are not a platform of their own (an archive, a chat
room bridge, a partner's ingest API). The receiver gets an
`Idempotency-Key` header that is the same for every attempt, so it can
drop a repeat after an ambiguous timeout.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from channels.base import Channel, Correction, Receipt, SendAttempt
from channels.http import json_body, request
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError, PermanentError


class WebhookChannel(Channel):
    type_name: ClassVar[str] = "webhook"
    correction: ClassVar[Correction] = Correction.EDIT

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
        with requests.Session() as session:
            response = request(
                session, "POST", self.config.base_url, json=post, headers=headers,
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
