"""Turning an editor's article into stored deliveries, and previewing it.

Formatting happens here, once, before anything is stored: a channel that
cannot format the article rejects the whole publish and nothing is kept,
and so does an override a channel would not take (`Channel.check_overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels import overrides
from channels.base import Channel
from publisher.domain import html as htmlkit
from publisher.domain.article import Article
from publisher.domain.errors import InputError
from publisher.domain.i18n import Phrase
from publisher.domain.states import Correction
from publisher.store import PlannedDelivery, PublishResult, Store


def select_channels(channels: Mapping[str, Channel], wanted: Sequence[str] | None) -> list[Channel]:
    if not wanted:
        return list(channels.values())
    unknown = [name for name in wanted if name not in channels]
    if unknown:
        known = ", ".join(sorted(channels))
        raise InputError(
            "channels",
            Phrase("unknown channel {name!r} (configured: {known})", name=unknown[0], known=known),
        )
    return [channels[name] for name in wanted]


def with_stored_media(article: Article, store: Store) -> Article:
    """A local cover file goes into the store, so any machine's worker can read it."""
    # `media/<sha>` is already in the store (an article read back from it and
    # published again, e.g. by syndication); a local file is an absolute path.
    if (
        article.cover_image
        and article.cover_is_local
        and not article.cover_image.startswith("media/")
    ):
        ref = store.save_media_file(Path(article.cover_image))
        return article.model_copy(update={"cover_image": ref})
    return article


@dataclass(frozen=True)
class ChannelPreview:
    """One channel's payload as it would be stored, and what the editor should know of it."""

    type: str
    payload: dict[str, Any]
    #: The override keys this payload took from the editor's copy (`overrides.<name>`).
    overridden: list[str] = field(default_factory=list)
    #: Each override's count in the platform's units, as the publish check counts it.
    counts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preview(
    article: Article, channels: Sequence[Channel], configured: Mapping[str, Channel] | None = None
) -> dict[str, ChannelPreview]:
    """What `publish` would store per channel; refuses what `publish` refuses.

    `configured` (every channel of the matrix) lets an override name a
    channel left out of this preview; by default only `channels` are known.
    """
    overrides.check_all(configured or {c.name: c for c in channels}, article)
    warnings = missing_alt_text(article)
    return {
        channel.name: ChannelPreview(
            type=channel.type_name,
            payload=channel.format(article),
            overridden=list(overrides.overridden(channel, article)),
            counts=[m.to_json() for m in overrides.measure(channel, article)],
            warnings=warnings,
        )
        for channel in channels
    }


def missing_alt_text(article: Article) -> list[str]:
    """The images followers who cannot see them would miss: no alt text, or no cover_alt."""
    found = []
    if article.cover_image and not article.cover_alt:
        found.append("the cover has no cover_alt: screen readers get nothing for it")
    for src, alt in htmlkit.images(article.body_html):
        if not alt.strip():
            found.append(f"body image {src[:80]} has no alt text")
    return found


def plan(article: Article, channels: Sequence[Channel]) -> list[PlannedDelivery]:
    return [
        PlannedDelivery(
            channel=channel.name,
            channel_type=channel.type_name,
            max_attempts=channel.config.max_attempts,
            payload=(payload := channel.format(article)),
            correction=channel.correction,
            correction_payload=_correction_payload(channel, article, payload),
            can_delete=channel.can_delete,
        )
        for channel in channels
    ]


def _correction_payload(
    channel: Channel, article: Article, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """What a correction sends where the delivered post cannot be edited in place."""
    if channel.correction == Correction.FOLLOW_UP:
        return channel.format_correction(article)
    if channel.correction == Correction.REPUBLISH:
        return payload
    return None


def publish(
    article: Article,
    store: Store,
    channels: Mapping[str, Channel],
    *,
    only: Sequence[str] | None = None,
    actor: str | None = None,
    awaiting: bool = False,
) -> PublishResult:
    targets = select_channels(channels, only or article.channels)
    overrides.check_all(channels, article)
    article = with_stored_media(article, store)
    return store.publish(article, plan(article, targets), actor=actor, awaiting=awaiting)
