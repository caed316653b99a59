"""Channel types, one module each. Adding a type: one module, its tests, one line here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from channels.app_feed import AppFeedChannel
from channels.base import Channel, ChannelContext
from channels.mastodon import MastodonChannel
from channels.rss import RssChannel
from channels.voice import VoiceChannel
from channels.webhook import WebhookChannel
from channels.wechat import WechatChannel
from channels.weibo import WeiboChannel
from publisher.config.pacing import paced_option
from publisher.config.settings import ChannelConfig
from publisher.domain.errors import ConfigError

if TYPE_CHECKING:
    from publisher.config.jobs import SyndicationConfig

CHANNEL_TYPES: dict[str, type[Channel]] = {
    RssChannel.type_name: RssChannel,
    AppFeedChannel.type_name: AppFeedChannel,
    WebhookChannel.type_name: WebhookChannel,
    WeiboChannel.type_name: WeiboChannel,
    MastodonChannel.type_name: MastodonChannel,
    WechatChannel.type_name: WechatChannel,
    VoiceChannel.type_name: VoiceChannel,
}


def build_channel(config: ChannelConfig, context: ChannelContext) -> Channel:
    try:
        kind = CHANNEL_TYPES[config.type]
    except KeyError:
        known = ", ".join(sorted(CHANNEL_TYPES))
        raise ConfigError(
            f"channels.{config.name}: unknown type {config.type!r} (known: {known})"
        ) from None
    return kind(config, context)


def check_matrix(
    channels: Mapping[str, ChannelConfig],
    syndication: Mapping[str, SyndicationConfig] | None = None,
) -> None:
    """Refuse what a channel type cannot do, before anything is built or sent.

    Settings are checked key by key when they load; what depends on the type's
    own facts (a feed is a document: it is never paced; a digest-capable
    channel's message holds at most `max_articles`) is checked here, by every
    process that builds channels (`Runtime`, `publisher preview`).
    """
    for job in (syndication or {}).values():
        kind = CHANNEL_TYPES.get(channels[job.channel].type) if job.channel in channels else None
        if kind is None or not kind.supports_digest or job.mode != "digest":
            continue
        if job.max_items > kind.max_articles:
            raise ConfigError(
                f"syndication.{job.name}.max_items: a {kind.type_name} digest is one message "
                f"of at most {kind.max_articles} articles, not {job.max_items}"
            )
    for config in channels.values():
        kind = CHANNEL_TYPES.get(config.type)
        option = paced_option(config)
        if option is not None and kind is not None and kind.is_feed:
            raise ConfigError(
                f"channels.{config.name}.{option}: a {config.type} feed is a "
                "document, not a post pushed to anyone: feeds are never paced"
            )
