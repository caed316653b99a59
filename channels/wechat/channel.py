"""`WechatChannel`: an article as an official-account draft, published with freepublish.

The class holds the platform's limits and the order of the steps; the steps
themselves live beside it: `formatting` (the HTML subset), `media` (covers
and body images), `publishing` (draft → submit → poll → reconcile → mass
send), `lookup` (finding what an ambiguous request created), `digest`
(multi-article messages) and `client` (token and HTTP).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from channels.base import Channel, ChannelContext, Correction, Receipt, SendAttempt, TextLimit
from channels.overrides import OverrideRule
from channels.wechat.client import WechatApi, truthy
from channels.wechat.digest import MAX_ARTICLES, format_message, prepare_message
from channels.wechat.formatting import fit_blocks, reduce_html, rewrite_images, utf16_length
from channels.wechat.media import DEFAULT_COVER_REF, WechatMedia, default_cover
from channels.wechat.publishing import Publisher
from publisher.config.settings import ChannelConfig
from publisher.domain.article import Article
from publisher.domain.errors import PermanentError
from publisher.domain.text import cut

log = logging.getLogger(__name__)


class WechatChannel(Channel):
    """`[channels.NAME] type = "wechat"`: options `appid_env`, `secret_env`, `mass_send`,
    `author` (default byline), `default_cover`, `generated_cover` (true: an article with
    no usable cover gets a generated card; false: it fails), `image_tries` (3),
    `token_refresh_margin`, `publish_wait` (seconds to poll inline),
    `publish_poll_interval`, `publish_reconcile_seconds`, `publish_vanished_seconds`,
    `reconcile_budget_seconds`, `reconcile_clock_margin`."""

    type_name: ClassVar[str] = "wechat"
    correction: ClassVar[Correction] = Correction.REPUBLISH
    can_delete: ClassVar[bool] = True

    title_limit: ClassVar[int] = 32
    author_limit: ClassVar[int] = 16
    digest_limit: ClassVar[int] = 128
    #: One draft holds several articles: a digest is one multi-article message.
    supports_digest: ClassVar[bool] = True
    #: Articles in one draft, i.e. in one multi-article message.
    max_articles: ClassVar[int] = MAX_ARTICLES
    #: "< 20 000 characters and < 1 MB": 20 000 characters of UTF-8 stay far below 1 MB.
    content_limit: ClassVar[int] = 20_000 - 1
    text_limits: ClassVar[tuple[TextLimit, ...]] = (
        TextLimit("article.title", title_limit, utf16_length),
        TextLimit("article.author", author_limit, utf16_length),
        TextLimit("article.digest", digest_limit, utf16_length),
        TextLimit("article.content", content_limit, len),
    )
    #: Room kept per body image: the platform's URL replaces ours after formatting.
    image_url_allowance: ClassVar[int] = 300
    override_rules: ClassVar[tuple[OverrideRule, ...]] = (
        OverrideRule("title", title_limit, "字"),
        OverrideRule("digest", digest_limit, "字"),
    )

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(config, context)
        self._api: WechatApi | None = None

    @property
    def api(self) -> WechatApi:
        """The API client for the channel's current context (its token cache lives in it)."""
        if self._api is None or self._api.context is not self.context:
            self._api = WechatApi(self.config, self.context)
        return self._api

    @property
    def publisher(self) -> Publisher:
        return Publisher(self.api, self.config.name)

    # ---- format: pure ---------------------------------------------------------------------

    def default_cover(self) -> str | None:
        """The `default_cover` option: a URL, or a path relative to the matrix file."""
        return default_cover(self.config, self.context)

    def default_cover_ref(self) -> str | None:
        """What a payload holds for the default cover: its URL, or `DEFAULT_COVER_REF`
        for a file on this server, resolved at send time, so a payload (shown by
        preview and the dashboard) never holds a server path."""
        value = self.default_cover()
        return DEFAULT_COVER_REF if value and "://" not in value else value

    def format(self, article: Article) -> dict[str, Any]:
        """The draft article payload, plus the image references `send` must upload.

        `cover_image` is the first choice of cover and `cover_fallbacks` what
        `send` tries next if it cannot be had (the default cover, body images).
        """
        reduced = reduce_html(article.body_html)
        content = "".join(fit_blocks(reduced.blocks, self.content_limit, self.image_url_allowance))
        inline = [src for src in reduced.images if f'src="{html.escape(src)}"' in content]
        author = article.author or str(self.config.option("author") or "")
        choices = [c for c in (article.cover_image, self.default_cover_ref(), *inline) if c]
        choices = list(dict.fromkeys(choices))
        mine = article.overrides.get(self.name, {})
        title = mine.get("title") or cut(article.title, self.title_limit, utf16_length)
        digest = mine.get("digest") or cut(article.summary, self.digest_limit, utf16_length)
        return {
            "article": {
                "article_type": "news",
                "title": title,
                "author": cut(author, self.author_limit, measure=utf16_length),
                "digest": digest,
                "content": content,
                "content_source_url": self.link(article),
                "need_open_comment": int(truthy(self.config.option("need_open_comment"))),
                "only_fans_can_comment": 0,
            },
            "cover_image": choices[0] if choices else None,
            "cover_fallbacks": choices[1:],
            "inline_images": inline,
        }

    def measure_override(self, key: str, value: str, article: Article) -> int:
        """WeChat's 字, counted conservatively (an emoji outside the BMP counts two)."""
        return utf16_length(value)

    def format_articles(self, articles: Sequence[Article]) -> dict[str, Any]:
        """One multi-article message (`channels.wechat.digest`): each article as `format`
        makes it, without its digest, each with its own cover and body images."""
        return format_message(articles, self.format)

    # ---- send: resumable ------------------------------------------------------------------

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        """Cover → body images → draft → publish → poll (→ mass send), each step checkpointed.

        `post` is one article (`format`) or a multi-article message
        (`format_articles`): then each article's cover and body images are
        uploaded, all articles go into one draft, and the receipt is the
        message's article_id with the first article's URL.
        """
        media = WechatMedia(self.api, self.config, self.context)
        if "articles" in post:
            articles = prepare_message(post["articles"], attempt, media)
        else:
            cover_id = media.ensure_cover(post, attempt)
            hosted = media.host_images(post.get("inline_images", []), attempt)
            content = rewrite_images(post["article"]["content"], hosted)
            articles = [{**post["article"], "content": content, "thumb_media_id": cover_id}]
        draft_id = self.publisher.ensure_draft(post, attempt, articles)
        article_id, url = self.publisher.ensure_published(post, attempt, draft_id)
        if truthy(self.config.option("mass_send")):
            self.publisher.ensure_mass_sent(attempt, draft_id)
        return Receipt(remote_id=article_id, remote_url=url)

    def delete(self, remote_id: str) -> None:
        """Remove a published article (`freepublish/delete`, every position in it).

        53600 (no such live article) means an earlier attempt already removed it.
        """
        try:
            self.api.call(
                "remove article",
                "freepublish/delete",
                payload={"article_id": remote_id, "index": 0},
            )
        except PermanentError as exc:
            if exc.code != "53600":
                raise
        log.info("%s: removed published article %s", self.name, remote_id)

    def refresh_auth(self) -> None:
        """Drop the token the platform rejected (only if it is still the cached one)."""
        self.api.refresh_auth()
