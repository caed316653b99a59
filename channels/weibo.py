"""Weibo: one status per article through `statuses/share`, within 140 字.

A status is 【title】, a summary cut to what is left, the article link (the
platform refuses a share without a link to one of the app's safe domains)
and the tags as plain words: `statuses/share` rejects `#话题#`, so no `#`
is left outside a URL. Everything is measured with `weibo_length`, the
platform's own rule (ASCII half, CJK and emoji one, a URL ten).

The cover (or the first body image) goes with the status as `pic`
(multipart, < 5 MB, JPEG/PNG/GIF: anything else is scaled or converted
first). A picture that cannot be had after `image_tries`, or that the
platform refuses (20005/20006/20007), leaves a text-only status and a note
in the attempt log: a picture never blocks a story.

Weibo has no idempotency key: its only guard is 20019, "this account
already posted this text". So a send whose outcome is unknown looks the
text up on the account's timeline before posting again, and 20019 or
20032 ("published, server slow") count as delivered. The lookup keeps the
rule of `channels/wechat/lookup.py`: newest first (paged by `max_id`) down to
the request's time; a failed page or no time left is retried from there
(checkpointed), never read as "not posted"; only a complete miss posts again. Posting is throttled
by a token bucket in Redis shared by all workers, under the platform's
hourly per-user limit. Weibo web apps get no refresh token, so a token
error asks the editor to re-authorise; the token itself travels only in
the `Authorization` header and never appears in a reason or a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit

from channels.base import Channel, ChannelContext, Correction, Receipt, SendAttempt, TextLimit
from channels.http import CodeTable, PlatformSession, classify_code, json_body, request
from channels.images import (
    GIF,
    JPEG,
    PNG,
    Image,
    Unavailable,
    fetch_bounded,
    first_image,
    fit_image,
    image_name,
)
from channels.overrides import OverrideRule
from channels.weibo_length import MAX_LENGTH, weibo_length
from channels.weibo_status import comparable, compose_override, compose_status
from publisher.config.settings import ChannelConfig
from publisher.domain.article import Article
from publisher.domain.errors import (
    ConfigError,
    DeliveryError,
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    RetryableError,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.weibo.com"
SHARE = "/2/statuses/share.json"
TIMELINE = "/2/statuses/user_timeline.json"
DESTROY = "/2/statuses/destroy.json"
RECONCILE_COUNT = 50  # statuses per timeline page when looking for a post that may have landed
PIC_MAX_BYTES = 5 * 1024 * 1024 - 1  # "< 5 MB"
PIC_TYPES = frozenset({JPEG, PNG, GIF})
PIC_REFUSED = frozenset({"20005", "20006", "20007"})  # type, size, multipart
REPEAT_WINDOW = 24 * 3600.0  # how far back a 20019 ("already posted") can point
_MONTHS = {
    m: n
    for n, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
UNKNOWN_ID = "unknown"
CORRECTION_PREFIX = "更正："
ORIGINAL_LINK_WEIGHT = 11  # 字: a space and one URL (10) to the corrected status

# The platform reference's table (§2). Rate limits wait for the hourly window
# to move on; unknown codes stay permanent so a person reads them.
CODES = CodeTable.of(
    retryable=[10001, 10002, 10003, 10009, 10010, 10011],
    rate_limited=[10022, 10023, 10024, 20016],
    success=[20019, 20032],
    retry_after={"10022": 600.0, "10023": 600.0, "10024": 600.0, "20016": 300.0},
)
# Token errors. Web apps have no refresh token: only the account owner can fix these.
REAUTHORISE = frozenset({"21301", "21315", "21316", "21317", "21319", "21327", "21332"})
# What an editor can do about a rejection, where Weibo's own words do not say.
HINTS = {
    "10014": "the Weibo app lacks the permission to post",
    "10017": "the status must link to a safe domain bound to the Weibo app",
    "20012": "the status is over 140 字",
    "20017": "Weibo finds it too similar to a recent post",
    "20018": "Weibo refuses a link in the status",
    "20021": "Weibo refuses the content",
    "21321": "the Weibo app is unaudited and over its user cap",
}


def parse_created_at(value: str) -> float | None:
    """Weibo's "Wed Oct 24 23:49:17 +0800 2012" as a Unix time (locale-independent)."""
    parts = value.split()
    try:
        _, month, day, clock, offset, year = parts
        hours, minutes, seconds = (int(p) for p in clock.split(":"))
        sign = -1 if offset.startswith("-") else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        moment = datetime(int(year), _MONTHS[month], int(day), hours, minutes, seconds, tzinfo=zone)
    except (ValueError, KeyError):
        return None
    return moment.timestamp()


def status_url(base_url: str, uid: str, status_id: str) -> str:
    """Where followers see a status: weibo.com for the real API, else `<base>/status/<id>`."""
    if urlsplit(base_url).hostname == "api.weibo.com":
        return f"https://weibo.com/{uid}/{status_id}"
    return f"{base_url.rstrip('/')}/status/{status_id}"


class WeiboApi:
    """One authenticated conversation with the API: session, token, error mapping."""

    def __init__(
        self,
        base_url: str,
        token: str,
        token_env: str,
        timeout: float,
        rate_limit_wait: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.rate_limit_wait = rate_limit_wait
        self._token = token
        self._token_env = token_env
        self.session = PlatformSession()
        # The header, never the query string: URLs end up in proxy and access logs.
        self.session.headers["Authorization"] = f"OAuth2 {token}"

    def close(self) -> None:
        self.session.close()

    def call(
        self, method: str, path: str, *, what: str, accept: frozenset[str] = frozenset(), **kw: Any
    ) -> dict[str, Any]:
        """The JSON answer; an error code in `accept` is returned, any other raised classified."""
        url = self.base_url + path
        response = request(self.session, method, url, timeout=self.timeout, what=what, **kw)
        data = json_body(response, what)
        code = error_code(data)
        if code is None and response.ok:
            return data
        if code is not None and code in accept:
            return data
        raise self._rejection(code, data, what, response.status_code)

    def _rejection(
        self, code: str | None, data: Mapping[str, Any], what: str, status: int
    ) -> DeliveryError:
        message = self._scrub(str(data.get("error") or f"HTTP {status}"))
        if code is None:
            return PermanentError(f"{what}: {message} (HTTP {status})", http_status=status)
        if code in REAUTHORISE:
            return ReauthRequiredError(
                f"{what}: Weibo rejected the access token ({message}, code {code}); "
                f"re-authorise the app for this account and put the new token in "
                f"{self._token_env}",
                code=code,
                http_status=status,
            )
        hint = HINTS.get(code)
        detail = f"{what}: {message}" + (f": {hint}" if hint else "")
        error = classify_code(CODES, code, detail, http_status=status)
        if isinstance(error, RateLimitedError) and self.rate_limit_wait:
            error.retry_after = self.rate_limit_wait
        return error

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


def error_code(data: Mapping[str, Any]) -> str | None:
    """Weibo's `error_code`, a number or sometimes a string, as a string."""
    code = data.get("error_code")
    return None if code in (None, "", 0, "0") else str(code).strip()


class WeiboChannel(Channel):
    """`[channels.NAME] type = "weibo"`: posts and deletes statuses.

    Options: `base_url` (https://api.weibo.com), `access_token_env` (the
    variable holding the user's token) and `rate_limit_wait` (seconds the
    account is held after the platform's own rate-limit codes; by default
    600, or 300 for 20016, as the hourly window moves on). The account's
    budget is the pacing keys' (`posts_per_hour`, `posts_burst`, `account`:
    `publisher.delivery.pacing`); this type's default is `posts_per_hour`,
    the platform's usual per-user limit.
    """

    type_name: ClassVar[str] = "weibo"
    posts_per_hour: ClassVar[float | None] = 30
    # A status cannot be edited through the API: a correction is a short new
    # status that says so and links the original; a retraction deletes both.
    correction: ClassVar[Correction] = Correction.FOLLOW_UP
    can_delete: ClassVar[bool] = True
    text_limits: ClassVar[tuple[TextLimit, ...]] = (TextLimit("status", MAX_LENGTH, weibo_length),)
    override_rules: ClassVar[tuple[OverrideRule, ...]] = (
        OverrideRule("text", MAX_LENGTH, "字", counts="with the article link"),
    )

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(config, context)
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")

    # -- formatting (pure) -------------------------------------------------

    def format(self, article: Article) -> dict[str, Any]:
        """The status text, already within 140 字: `send` posts exactly what preview showed;
        `pic` is the picture to attach (the cover, else the first body image)."""
        text = article.overrides.get(self.name, {}).get("text")
        link = self.link(article)
        status = compose_override(text, link, article.url) if text else None
        post: dict[str, Any] = {"status": status or compose_status(article, link=link)}
        pic = article.cover_image or first_image(article.body_html)
        if pic:
            post["pic"] = pic
        return post

    def format_correction(self, article: Article) -> dict[str, Any]:
        """A status marked as a correction, leaving room for the original's link."""
        corrected = article.model_copy(update={"title": CORRECTION_PREFIX + article.title})
        limit = MAX_LENGTH - ORIGINAL_LINK_WEIGHT
        return {"status": compose_status(corrected, limit, link=self.link(article))}

    def measure_override(self, key: str, value: str, article: Article) -> int:
        """The status's 字 as posted: the editor's text with the (tracked) article link."""
        return weibo_length(compose_override(value, self.link(article), article.url))

    # -- transport ---------------------------------------------------------

    def send_correction(
        self, post: dict[str, Any], original_url: str | None, attempt: SendAttempt
    ) -> Receipt:
        text = str(post.get("status", ""))
        if original_url:
            text = f"{text} {original_url}"  # format_correction kept room for it
        return self.send({"status": text}, attempt)

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        """Share the status once: reconcile first if an earlier attempt may have landed."""
        text = str(post.get("status", ""))
        if weibo_length(text) > MAX_LENGTH:
            raise PermanentError(
                f"post status: {weibo_length(text)} 字, over Weibo's {MAX_LENGTH}", code="20012"
            )
        with self._api() as api:
            requested = attempt.checkpoint.get("share_requested_at")
            if requested is not None or attempt.outcome_unknown:
                since = float(requested) if isinstance(requested, int | float) else 0.0
                found = self.find_posted(api, text, attempt, since=since)
                if found is not None:
                    log.info("%s: the last attempt had posted %s", self.name, found.remote_id)
                    return found
            picture = self._picture(post, attempt)
            data = self._share(api, text, picture, attempt)
            code = error_code(data)
            receipt = self._receipt(data) if code is None else self._settle(api, text, code, data)
        log.info("%s: posted status %s", self.name, receipt.remote_id)
        return receipt

    def delete(self, remote_id: str) -> None:
        """Delete a delivered status (a retraction); one already gone counts as deleted."""
        if remote_id == UNKNOWN_ID:
            raise PermanentError("delete status: Weibo never told us its id; delete it by hand")
        with self._api() as api:
            api.call(
                "POST",
                DESTROY,
                what="delete status",
                data={"id": remote_id},
                accept=frozenset({"20101"}),
            )
        log.info("%s: deleted status %s", self.name, remote_id)

    def find_posted(
        self, api: WeiboApi, text: str, attempt: SendAttempt | None = None, *, since: float = 0.0
    ) -> Receipt | None:
        """Our status on the account's timeline, or None once a complete lookup (back to
        `since`, less a clock margin) did not find it; `RetryableError` while incomplete."""
        wanted = comparable(text)
        saved = (attempt.checkpoint.get("timeline_lookup") if attempt else None) or {}
        max_id = int(saved.get("max_id") or 0) if saved.get("since") == since else 0
        oldest = since - float(self.config.option("reconcile_clock_margin", 300.0))
        deadline = time.monotonic() + float(self.config.option("reconcile_budget_seconds", 20.0))
        while True:
            params: dict[str, Any] = {"count": RECONCILE_COUNT}
            if max_id:
                params["max_id"] = max_id
            try:
                if time.monotonic() > deadline:
                    raise RetryableError("look for the post: out of time", retry_after=1.0)
                data = api.call("GET", TIMELINE, what="look for the post", params=params)
            except RetryableError as exc:
                if attempt is not None:
                    attempt.step("timeline_lookup", {"since": since, "max_id": max_id})
                raise RetryableError(
                    f"{exc.reason}; the lookup resumes there", code=exc.code,
                    http_status=exc.http_status, retry_after=exc.retry_after,
                ) from None  # fmt: skip
            statuses = [s for s in data.get("statuses") or [] if isinstance(s, Mapping)]
            for status in statuses:
                if comparable(str(status.get("text", ""))) == wanted:
                    return self._receipt(status)
                created = parse_created_at(str(status.get("created_at", "")))
                if created is not None and created < oldest:
                    statuses = []  # older than the request: the lookup is complete
                    break
            if len(statuses) < RECONCILE_COUNT:
                if attempt is not None:
                    attempt.step("timeline_lookup", None)
                return None
            max_id = min(int(s.get("id") or 0) for s in statuses) - 1

    def _picture(self, post: dict[str, Any], attempt: SendAttempt) -> Image | None:
        """The picture to attach, fitted to Weibo's limits, or None (noted) to post text only."""
        ref = post.get("pic")
        if not ref or attempt.checkpoint.get("pic_dropped"):
            return None
        tries = int(self.config.option("image_tries", 3))
        image = fetch_bounded(
            str(ref), self.context, attempt, tries=tries, max_bytes=4 * PIC_MAX_BYTES,
            allowed_types=PIC_TYPES | {"image/webp", "image/bmp"}, timeout=self.config.timeout,
        )  # fmt: skip
        if isinstance(image, Unavailable) and not image.final:
            raise RetryableError(
                f"picture {image_name(str(ref))}: {image.reason} (try {image.tries} of {tries}; "
                "then the status goes out without it)",
                retry_after=getattr(image.error, "retry_after", None),
            )
        try:
            if isinstance(image, Unavailable):
                raise image.error
            return fit_image(image, max_bytes=PIC_MAX_BYTES, allowed_types=PIC_TYPES)
        except DeliveryError as exc:
            self._drop_picture(attempt, str(ref), exc.reason)
            return None

    def _share(
        self, api: WeiboApi, text: str, picture: Image | None, attempt: SendAttempt
    ) -> dict[str, Any]:
        """POST statuses/share (multipart with `pic`); a refused picture: again, text only.

        `share_requested_at` marks the request as sent until the platform clearly
        answers, so an attempt after an unknown outcome reconciles first."""
        attempt.step("share_requested_at", time.time())
        files = {"pic": (picture.filename, picture.data, picture.content_type)} if picture else None
        try:
            return api.call(
                "POST", SHARE, what="post status", data={"status": text}, files=files,
                accept=CODES.success,
            )  # fmt: skip
        except OutcomeUnknownError:
            raise
        except DeliveryError as exc:
            if exc.code is not None:  # the platform answered: nothing was posted
                attempt.step("share_requested_at", None)
            if picture is None or exc.code not in PIC_REFUSED:
                raise
            self._drop_picture(attempt, picture.filename, exc.reason)
            return self._share(api, text, None, attempt)

    def _drop_picture(self, attempt: SendAttempt, name: str, reason: str) -> None:
        attempt.step("pic_dropped", True)
        attempt.note(f"picture {image_name(name)} left out, the status went text only: {reason}")

    # -- steps -------------------------------------------------------------

    def _settle(self, api: WeiboApi, text: str, code: str, data: Mapping[str, Any]) -> Receipt:
        """A success-equivalent answer: find the status it refers to.

        20019 says the text is already on the account; if it cannot be found
        there, the delivery stops for a person to look rather than post again.
        20032 says the post went out but is not visible yet: delivered even
        when the lookup finds nothing (or fails).
        """
        try:
            found = self.find_posted(api, text, since=time.time() - REPEAT_WINDOW)
        except DeliveryError:
            if code != "20032":
                raise
            found = None
        if found is not None:
            return found
        if code == "20032":
            return Receipt(remote_id=UNKNOWN_ID)
        message = str(data.get("error") or "repeat content")
        raise PermanentError(
            f"post status: Weibo says this text was already posted ({message}, code {code}) "
            f"but it is not among the account's last {RECONCILE_COUNT} statuses; check the "
            "account before sending again",
            code=code,
        )

    def _receipt(self, status: Mapping[str, Any]) -> Receipt:
        status_id = status.get("idstr") or status.get("id")
        if not status_id:
            raise PermanentError("post status: the answer has no status id")
        user = status.get("user")
        uid = (user.get("idstr") or user.get("id")) if isinstance(user, Mapping) else None
        return Receipt(
            remote_id=str(status_id),
            remote_url=status_url(self.base_url, str(uid or "u"), str(status_id)),
        )

    @contextmanager
    def _api(self) -> Iterator[WeiboApi]:
        try:
            token = self.config.secret("access_token")
        except ConfigError as exc:
            raise PermanentError(str(exc)) from None
        token_env = str(self.config.option("access_token_env"))
        wait = self.config.option("rate_limit_wait")
        api = WeiboApi(
            self.base_url, token, token_env, self.config.timeout,
            float(wait) if wait is not None else None,
        )  # fmt: skip
        try:
            yield api
        finally:
            api.close()
