"""Channel types, one module each. Adding a type: one module, its tests, one line here."""

from __future__ import annotations

from channels.app_feed import AppFeedChannel
from channels.base import Channel, ChannelContext
from channels.mastodon import MastodonChannel
from channels.rss import RssChannel
from channels.voice import VoiceChannel
from channels.webhook import WebhookChannel
from channels.wechat import WechatChannel
from channels.weibo import WeiboChannel
from publisher.errors import ConfigError
from publisher.settings import ChannelConfig

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
