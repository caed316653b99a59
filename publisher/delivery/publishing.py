"""Turning an editor's article into stored deliveries, and previewing it.

Formatting happens here, once, before anything is stored: a channel that
cannot format the article rejects the whole publish and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from channels.base import Channel
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


def preview(article: Article, channels: Sequence[Channel]) -> dict[str, dict[str, Any]]:
    return {channel.name: channel.format(article) for channel in channels}


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
) -> PublishResult:
    targets = select_channels(channels, only or article.channels)
    article = with_stored_media(article, store)
    return store.publish(article, plan(article, targets), actor=actor)
