"""Draft → freepublish → poll (→ mass send), each step checkpointed, none ever repeated blindly.

None of these calls is idempotent except mass send's `clientmsgid`
(reference §1), so a "request sent" marker is checkpointed around draft/add
and freepublish/submit. When the outcome of one is unknown, the next attempt
reconciles before it sends again (`channels.wechat.lookup`), by this rule:

- found in the listing: done, with the id the listing gives;
- the lookup is incomplete (a transient error on a page, out of time): retry,
  resuming the lookup where it stopped, never fail;
- complete and not found: a draft may be created again; a submit may be
  made again only once `publish_reconcile_seconds` have passed since the
  first one *and* the draft is still in the draft box (`draft/get`), because
  a draft leaves the box once it is published;
- complete, not found and the draft gone: someone removed it, or the job is
  slow; it is checked again until `publish_vanished_seconds` have passed,
  then reported with what was checked, for a person to look at.

Publishing is asynchronous: `freepublish/get` says 1 (publishing) until it
says 0 or a failure. The transport polls briefly, then raises a
`RetryableError` so the engine polls later, with the publish_id kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from channels.base import SendAttempt
from channels.wechat.client import WechatApi, as_int, required
from channels.wechat.lookup import DRAFTS, PUBLISHED, Found, Listing, find_in_listing
from publisher.domain.errors import (
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RetryableError,
)

log = logging.getLogger(__name__)

PUBLISH_FAILURES = {
    2: "the originality check failed",
    3: "publishing failed",
    4: "the platform's review rejected the article",
    5: "every article was deleted after publishing",
    6: "every article was banned after publishing",
}
#: Pause between inline status checks while publishing.
POLL_STEP = 0.25


class Publisher:
    """The platform steps after the images: one instance per channel."""

    def __init__(self, api: WechatApi, name: str) -> None:
        self.api = api
        self.name = name

    # ---- draft ----------------------------------------------------------------------------

    def ensure_draft(
        self, post: dict[str, Any], attempt: SendAttempt, articles: list[dict[str, Any]]
    ) -> str:
        checkpoint = attempt.checkpoint
        if checkpoint.get("draft_media_id"):
            return str(checkpoint["draft_media_id"])
        requested = _request_time(checkpoint.get("draft_requested"), attempt.outcome_unknown)
        if requested is not None:
            found = self._lookup(DRAFTS, post, attempt, requested)
            if found is not None:
                log.info("%s: reconciled: the draft already exists", self.name)
                attempt.step("draft_media_id", found.item_id)
                return found.item_id
        with _marked(attempt, "draft_requested", time.time()):
            data = self.api.call("create draft", "draft/add", payload={"articles": articles})
        media_id = required(data, "media_id", "create draft")
        attempt.step("draft_media_id", media_id)
        return media_id

    # ---- publish --------------------------------------------------------------------------

    def ensure_published(
        self, post: dict[str, Any], attempt: SendAttempt, draft_id: str
    ) -> tuple[str, str | None]:
        checkpoint = attempt.checkpoint
        if not checkpoint.get("article_id") and not checkpoint.get("publish_id"):
            self._submit(post, attempt, draft_id)
        if not checkpoint.get("article_id"):
            self._await_publish(attempt)
        return str(checkpoint["article_id"]), checkpoint.get("article_url")

    def _submit(self, post: dict[str, Any], attempt: SendAttempt, draft_id: str) -> None:
        requested = attempt.checkpoint.get("publish_requested_at")
        if requested is not None and self._reconcile_publish(post, attempt, draft_id, requested):
            return
        with _marked(attempt, "publish_requested_at", time.time()):
            data = self.api.call(
                "submit for publishing", "freepublish/submit", payload={"media_id": draft_id}
            )
        attempt.step("publish_id", str(required(data, "publish_id", "submit for publishing")))

    def _reconcile_publish(
        self, post: dict[str, Any], attempt: SendAttempt, draft_id: str, requested: float
    ) -> bool:
        """After an ambiguous submit: True if it was published; False if it may be submitted
        again; otherwise a retry (the module docstring gives the rule)."""
        found = self._lookup(PUBLISHED, post, attempt, requested)
        if found is not None:
            attempt.step("article_url", found.first.get("url"))
            attempt.step("article_id", found.item_id)
            log.info("%s: reconciled: published as %s", self.name, found.item_id)
            return True
        waited = time.time() - requested
        poll = self.api.option_float("publish_poll_interval", 10.0)
        if waited < self.api.option_float("publish_reconcile_seconds", 120.0):
            raise RetryableError(
                "publish: the last submission's outcome is unknown and it is not listed yet; "
                "checking again",
                retry_after=poll,
            )
        if self._draft_exists(draft_id):
            log.info("%s: not published and the draft is still in the box: submitting", self.name)
            return False
        vanished = self.api.option_float("publish_vanished_seconds", 3600.0)
        if waited < vanished:
            raise RetryableError(
                "publish: the draft left the draft box but the article is not listed yet; "
                "checking again",
                retry_after=max(poll, 30.0),
            )
        raise PermanentError(
            f"publish: the draft left the draft box and, {waited / 60:.0f} minutes after the "
            "submission, a complete look through everything published since does not show "
            "the article: it was removed on the platform; check the account before retrying"
        )

    def _lookup(
        self, listing: Listing, post: dict[str, Any], attempt: SendAttempt, since: float
    ) -> Found | None:
        return find_in_listing(
            self.api, listing, post, attempt, since=since,
            margin=self.api.option_float("reconcile_clock_margin", 300.0),
            budget=self.api.option_float("reconcile_budget_seconds", 20.0),
        )  # fmt: skip

    def _draft_exists(self, draft_id: str) -> bool:
        try:
            self.api.call("look up the draft", "draft/get", payload={"media_id": draft_id})
        except PermanentError as exc:
            if exc.code == "40007":  # reference §7: the draft has left the box
                return False
            raise
        return True

    def _await_publish(self, attempt: SendAttempt) -> None:
        """Poll for a short while; past that, let the engine poll later (publish_id kept)."""
        publish_id = attempt.checkpoint["publish_id"]
        deadline = time.monotonic() + self.api.option_float("publish_wait", 3.0)
        while True:
            data = self.api.call(
                "check publishing", "freepublish/get", payload={"publish_id": publish_id}
            )
            status = as_int(data.get("publish_status"))
            if status == 0:
                self._record_published(attempt, data)
                return
            if status != 1:
                self._publish_failed(attempt, status)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableError(
                    "publish: the platform is still publishing the article",
                    code="publish_status:1",
                    retry_after=self.api.option_float("publish_poll_interval", 10.0),
                )
            time.sleep(min(POLL_STEP, remaining))

    def _record_published(self, attempt: SendAttempt, data: dict[str, Any]) -> None:
        article_id = required(data, "article_id", "check publishing")
        items = (data.get("article_detail") or {}).get("item") or []
        url = next((i.get("article_url") for i in items if i.get("article_url")), None)
        attempt.step("article_url", url)
        attempt.step("article_id", article_id)
        log.info("%s: delivery %s published as %s", self.name, attempt.delivery_id, article_id)

    def _publish_failed(self, attempt: SendAttempt, status: int | None) -> NoReturn:
        description = PUBLISH_FAILURES.get(status or -1, "unknown publish status")
        if status in (2, 3, 4):  # the draft is still there: a manual retry may submit it again
            attempt.step("publish_id", None)
            attempt.step("publish_requested_at", None)
        raise PermanentError(
            f"publish: {description} (publish_status {status})", code=f"publish_status:{status}"
        )

    # ---- mass send ------------------------------------------------------------------------

    def ensure_mass_sent(self, attempt: SendAttempt, draft_id: str) -> None:
        """Push to followers; the clientmsgid makes a repeat answer 45065, i.e. done."""
        if attempt.checkpoint.get("mass_msg_id"):
            return
        payload = {
            "filter": {"is_to_all": True},
            "mpnews": {"media_id": draft_id},
            "msgtype": "mpnews",
            "send_ignore_reprint": 0,
            "clientmsgid": clientmsgid(attempt.idempotency_key),
        }
        try:
            data = self.api.call("push to followers", "message/mass/sendall", payload=payload)
        except PermanentError as exc:
            raise type(exc)(  # keeps a credential error a `reauth` one
                f"{exc.reason}; the article itself is published", code=exc.code
            ) from None
        attempt.step("mass_msg_id", str(data.get("msg_id") or "sent"))


def clientmsgid(idempotency_key: str) -> str:
    """Mass send's de-duplication key (≤ 64 bytes), the same for every attempt of a delivery."""
    return "pub-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def _request_time(marker: Any, outcome_unknown: bool) -> float | None:
    """When an ambiguous request was sent; 0 (no time bound) for an old boolean marker or
    an unknown outcome with no marker at all."""
    if isinstance(marker, bool) or (marker is None and outcome_unknown):
        return 0.0 if (marker or outcome_unknown) else None
    if isinstance(marker, int | float):
        return float(marker)
    return None


@contextmanager
def _marked(attempt: SendAttempt, name: str, value: Any) -> Iterator[None]:
    """Checkpoint a "request sent" marker around a non-idempotent call.

    The marker stays when the outcome is unknown (timeout, 5xx, garbled
    answer), so the next attempt reconciles first; it is cleared when the
    platform clearly refused or the request never left, so the next attempt
    simply sends again.
    """
    attempt.step(name, value)
    try:
        yield
    except DeliveryError as exc:
        if not _may_have_happened(exc):
            attempt.step(name, None)
        raise


def _may_have_happened(exc: DeliveryError) -> bool:
    if isinstance(exc, OutcomeUnknownError):
        return True
    answered_without_code = exc.code is None and exc.http_status not in (None, 429)
    return answered_without_code
