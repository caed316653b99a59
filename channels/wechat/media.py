"""Covers and body images for WeChat: re-hosted on the platform, never blocking a story.

- External `<img>` sources are filtered by the platform, so every body image
  goes through `media/uploadimg` (jpg/png, < 1 MB: larger ones are scaled
  down first). An image that cannot be had, after `image_tries` transient
  failures or at once on a permanent one, becomes its alt text, and the
  attempt log names it.
- A news article needs a *permanent* cover (`material/add_material`,
  `type=image`, which avoids the 64 KB thumb limit). The cover is the
  first of: the article's own, the channel's `default_cover`, a body image;
  when none of them can be had, a generated card (`channels.cover_card`),
  unless the channel says `generated_cover = false`.

Only an image's own problems are absorbed here (its source is gone, slow,
too big, refused by the platform); a platform outage or an expired token is
raised, so the whole send is retried.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from channels.base import ChannelContext, SendAttempt
from channels.cover_card import cover_card
from channels.images import (
    BMP,
    GIF,
    JPEG,
    PNG,
    Image,
    Unavailable,
    fetch_bounded,
    fit_image,
    image_name,
)
from channels.wechat.client import WechatApi, required, truthy
from publisher.config.settings import ChannelConfig
from publisher.domain.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)

#: The generated card's pseudo-reference, in checkpoints and notes.
CARD = "generated:cover-card"
#: What the platform says about one image it refuses (type, media type, size):
#: that image is replaced. Any other refusal (credentials, permissions) stops the send.
IMAGE_REFUSED = frozenset({"40004", "40005", "40009"})

#: A payload's name for the channel's own `default_cover` file (never its path).
DEFAULT_COVER_REF = "channel:default_cover"


def default_cover(config: ChannelConfig, context: ChannelContext) -> str | None:
    """The `default_cover` option: a URL, or a path relative to the matrix file."""
    value = config.option("default_cover")
    if not value or "://" in str(value):
        return str(value) if value else None
    return str((context.settings.config_path.parent / str(value)).resolve())


class WechatMedia:
    """Uploads one delivery's images, each once (checkpointed)."""

    cover_max_bytes: ClassVar[int] = 10 * 1024 * 1024
    cover_types: ClassVar[frozenset[str]] = frozenset({JPEG, PNG, GIF, BMP})
    inline_max_bytes: ClassVar[int] = 1024 * 1024 - 1
    inline_types: ClassVar[frozenset[str]] = frozenset({JPEG, PNG})
    #: Body images are fetched whole before they are scaled down, up to this size.
    download_max_bytes: ClassVar[int] = 20 * 1024 * 1024

    def __init__(self, api: WechatApi, config: ChannelConfig, context: ChannelContext) -> None:
        self.api = api
        self.config = config
        self.context = context
        self.tries = max(1, int(api.option_float("image_tries", 3)))

    # ---- covers ---------------------------------------------------------------------------

    def ensure_cover(self, part: dict[str, Any], attempt: SendAttempt) -> str:
        """The single article's cover media_id (checkpointed as `cover_media_id`)."""
        done = attempt.checkpoint.get("cover_media_id")
        if done:
            return str(done)
        media_id = self._cover_for(part, attempt)
        attempt.step("cover_media_id", media_id)
        return media_id

    def ensure_covers(self, parts: list[dict[str, Any]], attempt: SendAttempt) -> list[str]:
        """One permanent cover per article of a message, checkpointed by position."""
        missing = [n for n, part in enumerate(parts, 1) if not cover_candidates(part)]
        if missing and not truthy(self.config.option("generated_cover", True)):
            which = ", ".join(f"{n} ({parts[n - 1]['article']['title']})" for n in missing)
            raise PermanentError(  # refused before anything is uploaded
                f"WeChat articles need a cover image; none for article {which}: set "
                "cover_image, add an image to the body, or set the channel's default_cover "
                "(generated_cover = false forbids a generated card)"
            )
        done: dict[str, str] = dict(attempt.checkpoint.get("cover_media_ids") or {})
        for index, part in enumerate(parts):
            if str(index) not in done:
                done[str(index)] = self._cover_for(part, attempt)
                attempt.step("cover_media_ids", dict(done))
        return [done[str(index)] for index in range(len(parts))]

    def _cover_for(self, part: dict[str, Any], attempt: SendAttempt) -> str:
        """The first cover candidate that can be had, uploaded once per reference.

        The article's chosen cover gets `image_tries` tries over the attempts;
        each fallback one; the generated card is the last resort."""
        title = str(part["article"].get("title") or "")
        uploads: dict[str, str] = dict(attempt.checkpoint.get("cover_uploads") or {})
        waiting: Unavailable | None = None
        for position, ref in enumerate(cover_candidates(part)):
            if ref in uploads:
                return uploads[ref]
            outcome = self._upload_cover(ref, attempt)
            if isinstance(outcome, str):
                uploads[ref] = outcome
                attempt.step("cover_uploads", uploads)
                return outcome
            if not outcome.final and position == 0:
                waiting = outcome  # the chosen cover may come back: try it again later
                break
            # A fallback gets one try: waiting for it too would multiply the delay.
            attempt.note(f"cover {image_name(ref)} not used: {outcome.reason}")
        if waiting is not None:
            raise RetryableError(
                f"cover {title}: {waiting.reason} (try {waiting.tries} of {self.tries})",
                retry_after=waiting.error.retry_after if isinstance(waiting.error, RetryableError)
                else None,
            )  # fmt: skip
        if not truthy(self.config.option("generated_cover", True)):
            raise PermanentError(
                f"WeChat articles need a cover image; none could be had for {title!r}: set "
                "cover_image, add an image to the body, or set the channel's default_cover "
                "(generated_cover = false forbids a generated card)"
            )
        if CARD + title in uploads:
            return uploads[CARD + title]
        card = cover_card(title, self.context.settings.branding)
        media_id = self._upload(card, "upload cover", "material/add_material", {"type": "image"})
        uploads[CARD + title] = media_id
        attempt.step("cover_uploads", uploads)
        attempt.note(f"cover: generated a card with the title for {title!r}")
        return media_id

    def _upload_cover(self, ref: str, attempt: SendAttempt) -> str | Unavailable:
        if ref == DEFAULT_COVER_REF:  # resolved here, so no payload holds a server path
            ref = default_cover(self.config, self.context) or ref
        image = fetch_bounded(
            ref, self.context, attempt, tries=self.tries, max_bytes=self.cover_max_bytes,
            allowed_types=self.cover_types, timeout=self.config.timeout,
        )  # fmt: skip
        if isinstance(image, Unavailable):
            return image
        try:
            return self._upload(image, "upload cover", "material/add_material", {"type": "image"})
        except PermanentError as exc:
            if exc.code not in IMAGE_REFUSED:
                raise
            return Unavailable(exc, tries=1, final=True)  # the platform refused this image

    # ---- body images ----------------------------------------------------------------------

    def host_images(self, refs: list[str], attempt: SendAttempt) -> dict[str, str | None]:
        """Each body image re-hosted once: reference → platform URL, or None (its alt text).

        Every image gets its try in this attempt; if one failed transiently
        with tries left, the send is retried afterwards (the others are kept).
        """
        hosted: dict[str, str | None] = dict(attempt.checkpoint.get("inline_images") or {})
        waiting: list[tuple[str, Unavailable]] = []
        for ref in refs:
            if ref in hosted:
                continue
            outcome = self._rehost(ref, attempt)
            if isinstance(outcome, Unavailable) and not outcome.final:
                waiting.append((ref, outcome))
                continue
            if isinstance(outcome, Unavailable):
                attempt.note(f"body image {image_name(ref)} left out, its alt text kept: "
                             f"{outcome.reason}")  # fmt: skip
                log.warning("%s: body image left out: %s", self.config.name, outcome.reason)
            hosted[ref] = outcome if isinstance(outcome, str) else None
            attempt.step("inline_images", dict(hosted))
        if waiting:
            ref, first = waiting[0]
            raise RetryableError(
                f"body image {image_name(ref)}: {first.reason} (try {first.tries} of "
                f"{self.tries}; then it is left out)",
                retry_after=first.error.retry_after if isinstance(first.error, RetryableError)
                else None,
            )  # fmt: skip
        return hosted

    def _rehost(self, ref: str, attempt: SendAttempt) -> str | Unavailable:
        image = fetch_bounded(
            ref, self.context, attempt, tries=self.tries, max_bytes=self.download_max_bytes,
            allowed_types=self.cover_types | self.inline_types, timeout=self.config.timeout,
        )  # fmt: skip
        if isinstance(image, Unavailable):
            return image
        try:
            fitted = fit_image(
                image, max_bytes=self.inline_max_bytes, allowed_types=self.inline_types
            )
        except PermanentError as exc:  # not decodable as an image
            return Unavailable(exc, tries=1, final=True)
        try:
            return self._upload(fitted, "upload body image", "media/uploadimg", None)
        except PermanentError as exc:
            if exc.code not in IMAGE_REFUSED:
                raise
            return Unavailable(exc, tries=1, final=True)  # the platform refused this image

    def _upload(self, image: Image, what: str, path: str, params: dict[str, str] | None) -> str:
        data = self.api.call(
            what, path, params=params,
            files={"media": (image.filename, image.data, image.content_type)},
        )  # fmt: skip
        return required(data, "url" if path == "media/uploadimg" else "media_id", what)


def cover_candidates(part: dict[str, Any]) -> list[str]:
    """The article's cover, then its fallbacks (default cover, body images), once each."""
    refs = [part.get("cover_image"), *(part.get("cover_fallbacks") or [])]
    return list(dict.fromkeys(str(r) for r in refs if r))
