"""Mastodon: one status per article, cut to the instance's own way of counting.

A status is the title, a summary, the article link and the tags as
hashtags, one paragraph each. Mastodon counts grapheme clusters and every
URL as 23, and an instance may change both numbers, so `format` cuts to
the stock 500/23 for the preview and `send` re-cuts only if the instance it
talks to is stricter (read from `GET /api/v2/instance`, cached in Redis).
With `thread = true` the copy is the whole article, split rather than cut
into a thread of numbered replies (`channels.mastodon_thread`).

Posting carries the attempt's `Idempotency-Key`: Mastodon keeps it for an
hour and answers a repeat with the original status, so a retry after an
ambiguous timeout never posts twice (a retry more than an hour later is not
covered). A cover that cannot be fetched or uploaded fails the delivery
with the reason rather than posting without it; `upload_cover = false`
turns covers off. The access token travels only in the `Authorization`
header and is scrubbed from anything the server echoes back into an error
reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import redis

from channels.base import (
    Channel,
    ChannelContext,
    Correction,
    Receipt,
    SendAttempt,
    TextLimit,
    remote_posts,
)
from channels.http import json_body
from channels.images import fetch_image
from channels.mastodon_api import MastodonApi, receipt, status_path
from channels.mastodon_api import seconds_until_reset as seconds_until_reset  # re-exported
from channels.mastodon_length import MAX_CHARACTERS, URL_WEIGHT, mastodon_length
from channels.mastodon_status import StatusParts, compose_status, language_code, override_parts
from channels.mastodon_status import hashtags as hashtags  # re-exported for callers
from channels.mastodon_thread import THREAD, THREAD_TEXT, ThreadWriter, split, thread_text
from channels.overrides import OverrideRule
from publisher.config.settings import ChannelConfig
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError, DeliveryError, PermanentError, RetryableError
from publisher.domain.text import cut

log = logging.getLogger(__name__)

VISIBILITIES = ("public", "unlisted", "private", "direct")


@dataclass(frozen=True)
class InstanceLimits:
    """What an instance accepts; the defaults are stock Mastodon's."""

    max_characters: int = MAX_CHARACTERS
    url_weight: int = URL_WEIGHT
    image_size_limit: int = 10 * 1024 * 1024  # 10 MB: stock before 4.x raised it to 16
    image_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/webp")

    def measure(self, text: str) -> int:
        return mastodon_length(text, self.url_weight)

    def fits(self, text: str) -> bool:
        return self.measure(text) <= self.max_characters

    def without(self, spoiler_text: str) -> InstanceLimits:
        """What is left for the status once a content warning took its share."""
        return replace(self, max_characters=self.max_characters - self.measure(spoiler_text))

    @classmethod
    def from_instance(cls, data: Mapping[str, Any]) -> InstanceLimits:
        """Read `configuration` from a v2 instance document; absent or odd values keep defaults."""
        configuration = _mapping(data.get("configuration"))
        statuses = _mapping(configuration.get("statuses"))
        media = _mapping(configuration.get("media_attachments"))
        default = cls()
        types = media.get("supported_mime_types")
        return cls(
            max_characters=_positive_int(statuses.get("max_characters"), default.max_characters),
            url_weight=_positive_int(
                statuses.get("characters_reserved_per_url"), default.url_weight
            ),
            image_size_limit=_positive_int(media.get("image_size_limit"), default.image_size_limit),
            image_types=tuple(t for t in types if isinstance(t, str) and t.startswith("image/"))
            if isinstance(types, list) and types
            else default.image_types,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> InstanceLimits:
        data = json.loads(raw)
        data["image_types"] = tuple(data["image_types"])
        return cls(**data)


class MastodonChannel(Channel):
    """`[channels.NAME] type = "mastodon"`: posts, edits and deletes statuses.

    Options: `base_url` (the instance), `access_token_env` (the variable
    holding a token with write:statuses and write:media), `visibility`
    ("public"), `upload_cover` (true), `max_hashtags` (5),
    `instance_cache_seconds` (3600), `media_poll_interval` (1.0) and
    `media_wait_seconds` (60) for media the server processes asynchronously,
    and `thread` (false): copy over the limit goes out as a numbered thread
    of replies (`channels.mastodon_thread`) instead of being cut.
    """

    type_name: ClassVar[str] = "mastodon"
    correction: ClassVar[Correction] = Correction.EDIT
    can_delete: ClassVar[bool] = True
    # Stock limits, as `format` cuts for preview; `send` re-cuts for a stricter instance.
    text_limits: ClassVar[tuple[TextLimit, ...]] = (
        TextLimit("status", MAX_CHARACTERS, mastodon_length),
    )
    override_rules: ClassVar[tuple[OverrideRule, ...]] = (
        OverrideRule("text", MAX_CHARACTERS, counts="with the content warning, the link as 23"),
        OverrideRule("spoiler_text", MAX_CHARACTERS, counts="with the link as 23"),
        OverrideRule("visibility", choices=VISIBILITIES),
    )

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(config, context)
        self.visibility = str(config.option("visibility", "public"))
        if self.visibility not in VISIBILITIES:
            raise ConfigError(
                f"channels.{config.name}.visibility: {self.visibility!r} is not one of "
                + ", ".join(VISIBILITIES)
            )
        self.upload_cover = self._flag("upload_cover", True)
        self.max_hashtags = int(self._number("max_hashtags", 5, minimum=0))
        self.cache_seconds = int(self._number("instance_cache_seconds", 3600, minimum=0))
        self.poll_interval = self._number("media_poll_interval", 1.0, minimum=0.001)
        self.media_wait = self._number("media_wait_seconds", 60.0, minimum=0.001)
        self.thread = self._flag("thread", False)

    # -- formatting (pure) -------------------------------------------------

    def format(self, article: Article) -> dict[str, Any]:
        """The status for stock limits (500 / URL 23), plus what it was built from.

        The editor's `text` replaces the generated copy; `spoiler_text` (a content
        warning) takes its share of the limit; `visibility` replaces the channel's.
        With `thread = true` the copy is the whole article, split into `thread`."""
        mine = article.overrides.get(self.name, {})
        text, link, spoiler = mine.get("text"), self.link(article), mine.get("spoiler_text", "")
        parts = override_parts(text, link, article.url) if text else None
        parts = parts or StatusParts.of(article, self.max_hashtags, link)
        limits = InstanceLimits().without(spoiler)
        post: dict[str, Any] = {
            "status": compose_status(parts, limits),
            "language": language_code(article.language),
            "visibility": mine.get("visibility", self.visibility),
            "cover": article.cover_image if self.upload_cover else None,
            "cover_alt": article.cover_alt,
            "parts": parts.to_json(),
        }
        if self.thread:  # split, not cut: every part for preview, the copy for `send`
            copy = thread_text(article, parts, written=bool(text))
            post[THREAD] = split(copy, limits)
            post.update(status=post[THREAD][0], thread_text=copy)
        return {**post, "spoiler_text": spoiler} if spoiler else post

    def measure_override(self, key: str, value: str, article: Article) -> int:
        """Mastodon counts the content warning and the status together, every URL as 23."""
        stock, mine = InstanceLimits(), {**article.overrides.get(self.name, {}), key: value}
        spoiler = stock.measure(mine.get("spoiler_text", ""))
        if "text" not in mine:  # the generated copy is cut to fit; only the link must stay
            return spoiler + stock.url_weight
        parts = override_parts(mine["text"], self.link(article), article.url)
        return spoiler + stock.measure(compose_status(parts, InstanceLimits(max_characters=10**6)))

    # -- transport ---------------------------------------------------------

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        """Post the status (with the cover, if any) under the attempt's idempotency key;
        with `thread = true`, every part of the thread, each checkpointed."""
        with self._api() as api:
            limits = self.instance_limits(api)
            if THREAD_TEXT in post:
                return self._thread(api, post, attempt, limits)
            body = self._status_body(post, limits)
            media_ids = self._cover_media(api, post, attempt, limits)
            if media_ids:
                body["media_ids"] = media_ids
            data = api.json(
                "POST",
                "/api/v1/statuses",
                what="post status",
                json=body,
                headers={"Idempotency-Key": attempt.idempotency_key},
            )
        posted = receipt(data, "post status")
        log.info("%s: posted status %s", self.name, posted.remote_id)
        return posted

    def update(
        self, remote_id: str, post: dict[str, Any], attempt: SendAttempt | None = None
    ) -> Receipt:
        """Edit a delivered status in place (a correction); its media stay as they are.
        A thread's parts are edited, added or deleted to match the corrected copy
        (with `thread` turned off since, it shrinks to the one status)."""
        with self._api() as api:
            limits = self.instance_limits(api)
            threaded = attempt is not None and len(remote_posts(attempt.checkpoint)) > 1
            if attempt is not None and (THREAD_TEXT in post or threaded):
                return self._thread(api, post, attempt, limits, remote_id)
            body = self._status_body(post, limits)
            body.pop("visibility")  # Mastodon cannot change visibility on edit
            data = api.json("PUT", status_path(remote_id), what="edit status", json=body)
        edited = receipt(data, "edit status")
        log.info("%s: edited status %s", self.name, edited.remote_id)
        return edited

    def delete(self, remote_id: str) -> None:
        """Delete a delivered status (a retraction). One already gone counts as deleted."""
        with self._api() as api:
            response = api.call(
                "DELETE", status_path(remote_id), what="delete status", tolerate=(404,)
            )
        log.info("%s: deleted status %s (HTTP %s)", self.name, remote_id, response.status_code)

    def instance_limits(self, api: MastodonApi) -> InstanceLimits:
        """The instance's limits, from Redis if read recently; stock limits if unreadable."""
        key = self.context.settings.key("mastodon", "instance", _cache_id(api.base_url))
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        try:
            data = api.json("GET", "/api/v2/instance", what="read instance limits")
        except DeliveryError as exc:
            # Older servers have no v2 endpoint; a failure here must not block the post.
            log.warning("%s: using stock limits: %s", self.name, exc.reason)
            return InstanceLimits()
        limits = InstanceLimits.from_instance(data)
        self._cache_set(key, limits)
        return limits

    # -- steps -------------------------------------------------------------

    def _thread(
        self,
        api: MastodonApi,
        post: Mapping[str, Any],
        attempt: SendAttempt,
        limits: InstanceLimits,
        remote_id: str | None = None,
    ) -> Receipt:
        """Write the thread: the previewed parts where the instance counts as stock
        Mastodon does, else the copy split again for its limits. The cover goes
        on the first part."""
        spoiler = str(post.get("spoiler_text") or "")
        parts = post.get(THREAD)
        stock = (limits.max_characters, limits.url_weight) == (MAX_CHARACTERS, URL_WEIGHT)
        if THREAD_TEXT not in post:  # `thread` was turned off: one status, as cut
            parts = [self._status_body(post, limits)["status"]]
        elif not stock or not isinstance(parts, list):
            parts = split(str(post[THREAD_TEXT]), limits.without(spoiler))
        writer = ThreadWriter(
            api,
            attempt,
            body=lambda text: self._status_body({**post, "status": text}, limits),
            first_media=lambda: self._cover_media(api, post, attempt, limits),
        )
        posted = writer.write([str(p) for p in parts], remote_id)
        log.info("%s: thread %s has %s parts", self.name, posted.remote_id, len(parts))
        return posted

    def _status_body(self, post: Mapping[str, Any], limits: InstanceLimits) -> dict[str, Any]:
        """The JSON for create/edit, re-cut if this instance counts tighter than the preview."""
        status, spoiler = str(post.get("status", "")), str(post.get("spoiler_text") or "")
        limits = limits.without(spoiler)
        if not limits.fits(status):
            parts = post.get("parts")
            status = (
                compose_status(StatusParts.from_json(parts), limits)
                if isinstance(parts, Mapping)
                else cut(status, limits.max_characters, limits.measure)
            )
        body: dict[str, Any] = {
            "status": status,
            "visibility": post.get("visibility") or self.visibility,
        }
        if post.get("language"):
            body["language"] = post["language"]
        if spoiler:
            body["spoiler_text"] = spoiler
        return body

    def _cover_media(
        self,
        api: MastodonApi,
        post: Mapping[str, Any],
        attempt: SendAttempt,
        limits: InstanceLimits,
    ) -> list[str]:
        """The media id of the uploaded cover (none if the post has no cover).

        The id is checkpointed as soon as the server returns it, so a retry
        waits for the same upload instead of uploading again.
        """
        ref = post.get("cover")
        if not ref:
            return []
        media_id = attempt.checkpoint.get("media_id")
        if media_id is None:
            media_id, ready = self._upload(api, str(ref), limits, post.get("cover_alt"))
            attempt.step("media_id", media_id)
            if ready:
                attempt.step("media_ready", True)
        if not attempt.checkpoint.get("media_ready"):
            self._wait_until_processed(api, str(media_id))
            attempt.step("media_ready", True)
        return [str(media_id)]

    def _upload(
        self, api: MastodonApi, ref: str, limits: InstanceLimits, alt: str | None = None
    ) -> tuple[str, bool]:
        """Upload the cover, `alt` as its description; True if processed at once (200)."""
        image = fetch_image(
            ref,
            self.context,
            max_bytes=limits.image_size_limit,
            allowed_types=frozenset(limits.image_types),
            timeout=self.config.timeout,
        )
        response = api.call(
            "POST",
            "/api/v2/media",
            what="upload cover",
            files={"file": (image.filename, image.data, image.content_type)},
            data={"description": alt} if alt else None,
        )
        media = json_body(response, "upload cover")
        if media.get("id") is None:
            raise PermanentError("upload cover: the answer has no media id")
        return str(media["id"]), response.status_code == 200 and bool(media.get("url"))

    def _wait_until_processed(self, api: MastodonApi, media_id: str) -> None:
        """Poll the media until the server has processed it (206 → 200)."""
        deadline = time.monotonic() + self.media_wait
        path = f"/api/v1/media/{quote(media_id, safe='')}"
        while True:
            response = api.call("GET", path, what="wait for the cover to be processed")
            if response.status_code == 200 and json_body(response, "read cover").get("url"):
                return
            if time.monotonic() >= deadline:
                raise RetryableError(f"upload cover: still processing after {self.media_wait:g}s")
            time.sleep(self.poll_interval)

    # -- plumbing ----------------------------------------------------------

    @contextmanager
    def _api(self) -> Iterator[MastodonApi]:
        if not self.config.base_url:
            raise PermanentError(f"channels.{self.name}.base_url is not set")
        try:
            token = self.config.secret("access_token")
        except ConfigError as exc:
            raise PermanentError(str(exc)) from None
        token_env = str(self.config.option("access_token_env"))
        api = MastodonApi(self.config.base_url, token, token_env, self.config.timeout)
        try:
            yield api
        finally:
            api.close()

    def _cache_get(self, key: str) -> InstanceLimits | None:
        if self.context.redis is None or not self.cache_seconds:
            return None
        try:
            raw = self.context.redis.get(key)
            return None if raw is None else InstanceLimits.from_json(raw)
        except (redis.RedisError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: instance limits cache unreadable: %s", self.name, exc)
            return None

    def _cache_set(self, key: str, limits: InstanceLimits) -> None:
        if self.context.redis is None or not self.cache_seconds:
            return
        try:
            self.context.redis.set(key, limits.to_json(), ex=self.cache_seconds)
        except redis.RedisError as exc:
            log.warning("%s: cannot cache instance limits: %s", self.name, exc)

    def _flag(self, key: str, default: bool) -> bool:
        value = self.config.option(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"channels.{self.name}.{key}: must be true or false")
        return value

    def _number(self, key: str, default: float, *, minimum: float) -> float:
        value = self.config.option(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"channels.{self.name}.{key}: must be a number ≥ {minimum:g}")
        return float(value)


def _cache_id(base_url: str) -> str:
    """The instance's host and path, readable in a Redis key listing."""
    parts = urlsplit(base_url)
    return (parts.netloc + parts.path).rstrip("/")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _positive_int(value: Any, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )
